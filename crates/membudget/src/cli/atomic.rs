//! Outputs written under a temporary name and renamed into place.

use super::{add_pending, forget_pending};
use crate::outputs::{self, Claim, Lock};
use std::io;
use std::path::{Path, PathBuf};

/// An output file written under a temporary name in its destination directory and
/// renamed into place by [`AtomicFile::commit`]. Dropped without commit (an error, a
/// panic) or interrupted, the temporary file is removed: no half-written file ever
/// appears under the final name.
///
/// The destination is claimed first ([`crate::outputs::lock`]): while this run writes it,
/// another run gets "being written by another run (pid N)". The temporary is named
/// `.<name>.<pid>-<boot>-<random>.part`, so a later run removes it if this process is
/// killed (see [`crate::outputs::sweep`]).
#[derive(Debug)]
pub struct AtomicFile {
    tmp: Option<tempfile::NamedTempFile>,
    dest: PathBuf,
    // Dropped after the temporary is renamed or removed.
    _lock: Lock,
}

impl AtomicFile {
    /// Claim `dest` and create the temporary file beside it (creating directories as
    /// needed). A destination another live run holds is an error of kind `WouldBlock`
    /// whose message says so ([`AtomicFile::claim`] tells it apart).
    pub fn create(dest: &Path) -> io::Result<AtomicFile> {
        Self::claim(dest)?.map_err(|reason| io::Error::new(io::ErrorKind::WouldBlock, reason))
    }

    /// Claim `dest` and create the temporary file: `Ok(Err(reason))` when another live
    /// run is writing `dest` (the reason names its pid), for a record that skips it.
    pub fn claim(dest: &Path) -> io::Result<Result<AtomicFile, String>> {
        let lock = match outputs::lock(dest)? {
            Claim::Mine(l) => l,
            Claim::Busy(pid) => return Ok(Err(Claim::busy_reason(pid))),
        };
        let dir = outputs::parent_dir(dest);
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = tempfile::Builder::new()
            .prefix(&outputs::temp_prefix(&name))
            .suffix(outputs::PART_SUFFIX)
            .tempfile_in(dir)?;
        add_pending(tmp.path());
        Ok(Ok(AtomicFile {
            tmp: Some(tmp),
            dest: dest.to_path_buf(),
            _lock: lock,
        }))
    }

    /// The open temporary file.
    pub fn file(&mut self) -> &mut std::fs::File {
        self.tmp
            .as_mut()
            .expect("AtomicFile used after commit")
            .as_file_mut()
    }

    /// The temporary file's path (for libraries that want a path).
    pub fn temp_path(&self) -> &Path {
        self.tmp
            .as_ref()
            .expect("AtomicFile used after commit")
            .path()
    }

    /// The final path.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Empty the temporary file and go back to its start, to write it again (the claim
    /// is kept).
    pub fn restart(&mut self) -> io::Result<()> {
        use std::io::Seek;
        let f = self.file();
        f.set_len(0)?;
        f.rewind()
    }

    /// Start writing the temporary's dirty pages to disk, without waiting (Linux; else
    /// nothing): the [`AtomicFile::commit`] after it finds less left to write. Calls
    /// while the file is written keep the disk busy while the tool computes, and a call
    /// on each of several files before committing them lets their writes overlap. The
    /// file at the temporary path is the one meant (a library handed `temp_path` may
    /// have replaced it).
    pub fn start_writeback(&self) -> io::Result<()> {
        start_writeback(&std::fs::File::open(self.temp_path())?);
        Ok(())
    }

    /// Flush to disk and rename into place.
    pub fn commit(mut self) -> io::Result<PathBuf> {
        let tmp = self.tmp.take().expect("AtomicFile committed twice");
        // tempfile creates 0600 files; an output should get the mode any new file gets
        // (0666 less the umask), or keep the mode of the file it replaces (--force).
        let mode = match std::fs::metadata(&self.dest) {
            Ok(m) => m.permissions(),
            Err(_) => new_file_permissions(),
        };
        // A library handed `temp_path` may have replaced the file (CFITSIO deletes and
        // creates it): then the file to sync is the one at the path, not our handle's.
        let at_path = {
            use std::os::unix::fs::MetadataExt;
            let path_ino = std::fs::metadata(tmp.path())?.ino();
            (path_ino != tmp.as_file().metadata()?.ino())
                .then(|| std::fs::File::open(tmp.path()))
                .transpose()?
        };
        let file = at_path.as_ref().unwrap_or(tmp.as_file());
        file.set_permissions(mode)?;
        file.sync_all()?;
        let tmp_path = tmp.path().to_path_buf();
        tmp.persist(&self.dest).map_err(|e| e.error)?;
        forget_pending(&tmp_path);
        Ok(self.dest.clone())
    }
}

/// The permissions a newly created file gets: 0666 less the process's umask, read from
/// /proc (reading it with umask(2) would briefly change it for every thread).
pub(super) fn new_file_permissions() -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    let umask = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022);
    std::fs::Permissions::from_mode(0o666 & !umask)
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if let Some(tmp) = &self.tmp {
            forget_pending(tmp.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn atomic_file_commits_or_vanishes() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("sub/out.bin");
        let mut a = AtomicFile::create(&dest).unwrap();
        a.file().write_all(b"hello").unwrap();
        let tmp = a.temp_path().to_path_buf();
        assert!(tmp.exists() && !dest.exists());
        a.commit().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello");
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, new_file_permissions().mode() & 0o777);
        }
        assert!(!tmp.exists());

        let dest2 = dir.path().join("sub/never.bin");
        let mut b = AtomicFile::create(&dest2).unwrap();
        b.file().write_all(b"x").unwrap();
        let tmp2 = b.temp_path().to_path_buf();
        drop(b);
        assert!(!tmp2.exists() && !dest2.exists());
    }

    /// Writeback started on the file at the temporary path (one a library replaced,
    /// too) changes nothing of what is committed.
    #[test]
    fn writeback_started_before_the_commit_keeps_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("w.bin");
        let a = AtomicFile::create(&dest).unwrap();
        std::fs::remove_file(a.temp_path()).unwrap();
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(a.temp_path(), &data[..1_000_000]).unwrap();
        a.start_writeback().unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(a.temp_path())
            .unwrap();
        f.write_all(&data[1_000_000..]).unwrap();
        drop(f);
        a.start_writeback().unwrap();
        a.commit().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), data);
    }

    /// A library given `temp_path` that deletes and recreates the file (CFITSIO does):
    /// the file renamed into place gets the replaced output's mode, as one written
    /// through the handle does.
    #[test]
    fn a_file_replaced_at_the_temp_path_is_the_one_finished() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.fits");
        std::fs::write(&dest, b"old").unwrap();
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o600)).unwrap();
        let a = AtomicFile::create(&dest).unwrap();
        std::fs::remove_file(a.temp_path()).unwrap();
        std::fs::write(a.temp_path(), b"new").unwrap();
        std::fs::set_permissions(a.temp_path(), std::fs::Permissions::from_mode(0o644)).unwrap();
        a.commit().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"new");
        let mode = std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}

/// Bytes written between two starts of writeback by [`EarlyWriteback`].
const WRITEBACK_EVERY: u64 = 8 << 20;

/// A file whose written pages start going to disk every few MiB, without waiting, so
/// the `fsync` of [`AtomicFile::commit`] finds little left to write: the disk works
/// while the tool computes instead of after it (a 300 MiB output's commit took 0.13 s
/// of a 1 s run). Elsewhere than Linux a plain file.
#[derive(Debug)]
pub struct EarlyWriteback {
    file: std::fs::File,
    since: u64,
}

impl EarlyWriteback {
    /// Wrap `file` (a handle on the temporary of an [`AtomicFile`]).
    pub fn new(file: std::fs::File) -> Self {
        EarlyWriteback { file, since: 0 }
    }

    fn start_writeback(&mut self) {
        start_writeback(&self.file);
        self.since = 0;
    }
}

/// Start writeback of `file`'s dirty pages without waiting for it (Linux only).
fn start_writeback(file: &std::fs::File) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::io::AsRawFd;
        // SAFETY: sync_file_range only reads the descriptor and the range (0, 0: the
        // whole file); SYNC_FILE_RANGE_WRITE starts writeback of the dirty pages and
        // does not wait for it. An error (a filesystem without it) changes nothing:
        // the commit's fsync writes them all.
        unsafe {
            libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
}

impl io::Write for EarlyWriteback {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.since += n as u64;
        if self.since >= WRITEBACK_EVERY {
            self.start_writeback();
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl io::Seek for EarlyWriteback {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        self.file.seek(pos)
    }
}

/// Bytes a [`DirectWriter`] gathers before each write (a multiple of any block size).
const DIRECT_CHUNK: usize = 512 << 10;
/// What `O_DIRECT` asks the buffer's address, the file offset and the length to be
/// multiples of (the largest logical block size in use).
const DIRECT_ALIGN: usize = 4096;

/// A large output written past the page cache (`O_DIRECT` on Linux), in aligned chunks
/// of 512 KiB: the disk takes the data straight from this buffer, so writing costs the
/// writing thread no copy into the cache (for a 300 MiB TIFF, 0.3-0.5 s of CPU in the
/// kernel, the largest single cost of a point-operation chain) and leaves no dirty pages
/// for [`AtomicFile::commit`]'s `fsync`. The tail (less than a chunk) and anything
/// written after a seek outside the chunk held, or after `flush`, go through the page
/// cache as usual; so does everything on a filesystem that refuses `O_DIRECT` (tmpfs),
/// where this is [`EarlyWriteback`]'s behaviour with a buffer. Writes land where a
/// buffered file's would: seek back inside the chunk held, or anywhere after it.
#[derive(Debug)]
pub struct DirectWriter {
    file: std::fs::File,
    /// Over-allocated by [`DIRECT_ALIGN`] so that an aligned chunk fits inside.
    raw: Vec<u8>,
    /// Where the aligned chunk starts in `raw`.
    start: usize,
    /// Bytes of the chunk holding data, and the write position in it.
    len: usize,
    cur: usize,
    /// The file offset of the chunk's first byte.
    at: u64,
    direct: bool,
    /// Bytes written through the page cache since writeback was last started.
    since: u64,
}

impl DirectWriter {
    /// Write `file` (a handle on the temporary of an [`AtomicFile`], at its start) from
    /// offset 0, past the page cache when the filesystem allows it.
    pub fn new(file: std::fs::File) -> Self {
        let raw = vec![0u8; DIRECT_CHUNK + DIRECT_ALIGN];
        let start = raw.as_ptr().align_offset(DIRECT_ALIGN).min(DIRECT_ALIGN);
        let direct = set_direct(&file, true);
        DirectWriter {
            file,
            raw,
            start,
            len: 0,
            cur: 0,
            at: 0,
            direct,
            since: 0,
        }
    }

    /// Whether writes still bypass the page cache.
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// Write the chunk held at its offset and start an empty one where the write
    /// position is.
    fn write_chunk(&mut self) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        if self.len > 0 {
            let (a, b) = (self.start, self.start + self.len);
            let aligned = self.len == DIRECT_CHUNK && self.at.is_multiple_of(DIRECT_ALIGN as u64);
            if self.direct && !aligned {
                self.leave_direct();
            }
            match self.file.write_all_at(&self.raw[a..b], self.at) {
                Err(e) if self.direct && e.raw_os_error() == Some(libc::EINVAL) => {
                    // Refused after all (an alignment this filesystem wants larger).
                    self.leave_direct();
                    self.file.write_all_at(&self.raw[a..b], self.at)?;
                }
                r => r?,
            }
            if !self.direct {
                self.since += self.len as u64;
                if self.since >= WRITEBACK_EVERY {
                    start_writeback(&self.file);
                    self.since = 0;
                }
            }
        }
        self.at += self.cur as u64;
        self.len = 0;
        self.cur = 0;
        Ok(())
    }

    fn leave_direct(&mut self) {
        if self.direct {
            set_direct(&self.file, false);
            self.direct = false;
        }
    }
}

/// Set or clear `O_DIRECT` on `file`'s open file description: whether it is set after.
fn set_direct(file: &std::fs::File, on: bool) -> bool {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::io::AsRawFd;
        let fd = file.as_raw_fd();
        // SAFETY: F_GETFL and F_SETFL read and set the status flags of a descriptor this
        // handle owns; no memory is passed.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            if flags < 0 {
                return false;
            }
            let want = if on {
                flags | libc::O_DIRECT
            } else {
                flags & !libc::O_DIRECT
            };
            let set = libc::fcntl(fd, libc::F_SETFL, want) == 0;
            // Cleared unless clearing failed.
            if on {
                set
            } else {
                !set
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (file, on);
        false
    }
}

impl io::Write for DirectWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(DIRECT_CHUNK - self.cur);
        let a = self.start + self.cur;
        self.raw[a..a + n].copy_from_slice(&buf[..n]);
        self.cur += n;
        self.len = self.len.max(self.cur);
        if self.cur == DIRECT_CHUNK {
            self.write_chunk()?;
        }
        Ok(n)
    }
    /// Everything held goes to the file; later writes go through the page cache.
    fn flush(&mut self) -> io::Result<()> {
        self.leave_direct();
        self.write_chunk()
    }
}

impl io::Seek for DirectWriter {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        let here = self.at + self.cur as u64;
        let to = match pos {
            io::SeekFrom::Start(p) => Some(p),
            io::SeekFrom::Current(d) => here.checked_add_signed(d),
            io::SeekFrom::End(_) => None,
        };
        match to {
            // Inside the chunk held: only the write position moves.
            Some(p) if p >= self.at && p <= self.at + self.len as u64 => {
                self.cur = (p - self.at) as usize;
                Ok(p)
            }
            _ => {
                // Elsewhere: what is held is written, then buffered writes from there.
                let end = self.at + self.len as u64;
                self.cur = self.len;
                io::Write::flush(self)?;
                let p = match pos {
                    io::SeekFrom::End(d) => {
                        let size = self.file.metadata()?.len().max(end);
                        size.checked_add_signed(d)
                    }
                    _ => to,
                }
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before 0"))?;
                self.at = p;
                Ok(p)
            }
        }
    }
}

impl Drop for DirectWriter {
    fn drop(&mut self) {
        // As BufWriter does: what is held is written, errors ignored (call flush to
        // see them).
        let _ = io::Write::flush(self);
    }
}

#[cfg(test)]
mod early_writeback_tests {
    use super::*;
    use std::io::{Read, Seek, SeekFrom, Write};

    /// Past several writeback windows, with a seek back (as a TIFF writer patches its
    /// header), the file holds exactly what was written.
    #[test]
    fn writes_and_seeks_land_as_given() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut w = EarlyWriteback::new(std::fs::File::create(&path).unwrap());
        let chunk: Vec<u8> = (0..(3 << 20)).map(|i| (i % 251) as u8).collect();
        for _ in 0..7 {
            w.write_all(&chunk).unwrap();
        }
        w.seek(SeekFrom::Start(5)).unwrap();
        w.write_all(b"head").unwrap();
        w.flush().unwrap();
        drop(w);
        let mut got = Vec::new();
        std::fs::File::open(&path)
            .unwrap()
            .read_to_end(&mut got)
            .unwrap();
        assert_eq!(got.len(), 7 * chunk.len());
        assert_eq!(&got[5..9], b"head");
        assert_eq!(got[..5], chunk[..5]);
        assert_eq!(got[9..chunk.len()], chunk[9..]);
        assert_eq!(got[6 * chunk.len()..], chunk[..]);
    }
}

#[cfg(test)]
mod direct_writer_tests {
    use super::*;
    use std::io::{Read, Seek, SeekFrom, Write};

    /// Chunks of odd sizes past several direct chunks, a seek back inside the chunk held,
    /// one before it (as a TIFF writer patches its header at the end) and a tail: the file
    /// holds what a plain file would, whether the temporary directory's filesystem takes
    /// O_DIRECT (ext4, xfs) or refuses it (tmpfs).
    #[test]
    fn writes_and_seeks_land_as_given() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut w = DirectWriter::new(std::fs::File::create(&path).unwrap());
        let mut want = Vec::new();
        let mut k = 0u32;
        for len in [5usize, 4091, 1 << 20, 3 << 19, 777, (1 << 20) - 3, 12345] {
            let chunk: Vec<u8> = (0..len)
                .map(|i| {
                    k = k.wrapping_mul(1103515245).wrapping_add(12345 + i as u32);
                    (k >> 16) as u8
                })
                .collect();
            w.write_all(&chunk).unwrap();
            want.extend_from_slice(&chunk);
        }
        // Inside the chunk held: back 100 bytes, then on past the end.
        let end = want.len() as u64;
        w.seek(SeekFrom::Start(end - 100)).unwrap();
        w.write_all(&[7; 150]).unwrap();
        want.truncate(want.len() - 100);
        want.extend_from_slice(&[7; 150]);
        // Before it: the header.
        assert_eq!(w.seek(SeekFrom::Start(4)).unwrap(), 4);
        w.write_all(b"head").unwrap();
        want[4..8].copy_from_slice(b"head");
        assert_eq!(w.seek(SeekFrom::End(0)).unwrap(), want.len() as u64);
        w.write_all(b"tail").unwrap();
        want.extend_from_slice(b"tail");
        w.flush().unwrap();
        drop(w);
        let mut got = Vec::new();
        std::fs::File::open(&path)
            .unwrap()
            .read_to_end(&mut got)
            .unwrap();
        assert_eq!(got.len(), want.len());
        assert!(got == want, "contents differ");
    }
}
