//! Keeping the pass files (positions, records, features...) out of the page cache.
//!
//! Inside a memory cgroup (containers, Slurm jobs) the page cache of the files a process
//! writes is charged to its cgroup: the passes' gigabytes of temporaries then push the
//! cgroup against its limit and every write waits for reclaim (a 4M-point file took 23 s
//! instead of 5.6 s under 64 MiB). These files are read back once or a few times,
//! front to back, so caching them buys little: written ranges are flushed a window
//! behind the writer and dropped (`sync_file_range` + `posix_fadvise(DONTNEED)`), read
//! ranges dropped once consumed. Elsewhere than Linux this does nothing.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether the pass files are kept out of the page cache (the default).
static DROP: AtomicBool = AtomicBool::new(true);

/// Keep the pass files of the next input in the page cache (`true`) or out of it. The
/// caller keeps them when the budget holds them beside the pass's own memory: dropping
/// them then only buys disk waits (a flush per window, the next pass reading them back
/// from disk), which grew with the cloud: 5 million points spent 2.5 s more per million
/// points than 1 million did, cores idle.
pub fn keep_cached(keep: bool) {
    DROP.store(!keep, Ordering::Relaxed);
}

fn dropping() -> bool {
    DROP.load(Ordering::Relaxed)
}

/// Bytes written between two flush-and-drop steps.
const WINDOW: u64 = 8 << 20;
/// Bytes read between two drops (the kernel reads ahead up to `read_ahead_kb` more,
/// 128 KiB to 8 MiB: that much stays cached whatever this says).
const READ_WINDOW: u64 = 2 << 20;

#[cfg(target_os = "linux")]
mod sys {
    use std::fs::File;
    use std::os::unix::io::AsRawFd;

    /// Start writing `[from, to)` back to disk, without waiting.
    pub fn start_writeback(f: &File, from: u64, to: u64) {
        if to > from {
            // SAFETY: sync_file_range only reads the descriptor and the range; an
            // error (e.g. a filesystem without it) leaves the pages cached, no more.
            unsafe {
                libc::sync_file_range(
                    f.as_raw_fd(),
                    from as libc::off64_t,
                    (to - from) as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
            }
        }
    }

    /// Wait until `[from, to)` is on disk, then drop it from the page cache (`to == 0`:
    /// to the end of the file).
    pub fn settle_and_drop(f: &File, from: u64, to: u64) {
        let len = if to == 0 { 0 } else { to.saturating_sub(from) };
        if to != 0 && len == 0 {
            return;
        }
        // SAFETY: as above; posix_fadvise is advice on the descriptor's pages only, and
        // DONTNEED drops clean pages (dirty ones stay until written back, hence the
        // wait before).
        unsafe {
            libc::sync_file_range(
                f.as_raw_fd(),
                from as libc::off64_t,
                len as libc::off64_t,
                libc::SYNC_FILE_RANGE_WAIT_BEFORE
                    | libc::SYNC_FILE_RANGE_WRITE
                    | libc::SYNC_FILE_RANGE_WAIT_AFTER,
            );
            libc::posix_fadvise(
                f.as_raw_fd(),
                from as libc::off_t,
                len as libc::off_t,
                libc::POSIX_FADV_DONTNEED,
            );
        }
    }

    /// Wait for the writeback in flight on `f`, then drop its clean pages; DONTNEED
    /// also starts writing back the dirty ones, which the next call then drops.
    pub fn pipeline(f: &File) {
        // SAFETY: as above.
        unsafe {
            libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WAIT_BEFORE);
            libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
        }
    }

    /// Drop pages already read (clean) from the cache (`to == 0`: to the end).
    pub fn drop_clean(f: &File, from: u64, to: u64) {
        let len = if to == 0 { 0 } else { to.saturating_sub(from) };
        // SAFETY: advice only, as above.
        unsafe {
            libc::posix_fadvise(
                f.as_raw_fd(),
                from as libc::off_t,
                len as libc::off_t,
                libc::POSIX_FADV_DONTNEED,
            );
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    use std::fs::File;
    pub fn start_writeback(_: &File, _: u64, _: u64) {}
    pub fn settle_and_drop(_: &File, _: u64, _: u64) {}
    pub fn drop_clean(_: &File, _: u64, _: u64) {}
    pub fn pipeline(_: &File) {}
}

/// A pass file written front to back through a buffer, its pages written back and
/// dropped from the cache a window behind the writer.
#[derive(Debug)]
pub struct PassWriter {
    w: BufWriter<File>,
    /// Bytes handed to the file so far (flushed or in the buffer).
    pos: u64,
    /// Writeback was started up to here.
    started: u64,
    /// Written back and dropped up to here.
    dropped: u64,
}

impl PassWriter {
    /// Write `file` from its start through a buffer of `capacity` bytes.
    pub fn new(capacity: usize, file: File) -> PassWriter {
        PassWriter {
            w: BufWriter::with_capacity(capacity, file),
            pos: 0,
            started: 0,
            dropped: 0,
        }
    }

    fn step(&mut self) -> io::Result<()> {
        self.w.flush()?;
        if !dropping() {
            self.started = self.pos;
            return Ok(());
        }
        let f = self.w.get_ref();
        sys::start_writeback(f, self.started, self.pos);
        // The window before the one just started is on disk by now, or nearly.
        sys::settle_and_drop(f, self.dropped, self.started);
        self.dropped = self.started;
        self.started = self.pos;
        Ok(())
    }

    /// Flush everything, drop it from the cache and return the file.
    pub fn finish(mut self) -> io::Result<File> {
        self.w.flush()?;
        let f = self.w.into_inner().map_err(|e| e.into_error())?;
        if dropping() {
            sys::settle_and_drop(&f, self.dropped, 0);
        }
        Ok(f)
    }
}

impl Write for PassWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.w.write(buf)?;
        self.pos += n as u64;
        if self.pos - self.started >= WINDOW {
            self.step()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

/// Tracks how far a pass file was read front to back, dropping what was read from the
/// cache a window at a time.
#[derive(Debug, Default)]
pub struct ReadBehind {
    read: u64,
    dropped: u64,
}

impl ReadBehind {
    /// `n` more bytes of `f` were read.
    pub fn consumed(&mut self, f: &File, n: usize) {
        self.read += n as u64;
        if self.read - self.dropped >= READ_WINDOW && dropping() {
            sys::drop_clean(f, self.dropped, self.read);
            self.dropped = self.read;
        }
    }

    /// Reading `f` is over: drop all of it (the tail, the kernel's read-ahead).
    pub fn done(&mut self, f: &File) {
        if dropping() {
            sys::drop_clean(f, 0, 0);
        }
        self.dropped = self.read;
    }
}

/// A file written at scattered offsets (the features): once a batch of writes is done,
/// wait for the previous batch's writeback, drop it, and start writing this one.
pub fn written_batch(f: &File) {
    if dropping() {
        sys::pipeline(f);
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::os::unix::io::AsRawFd;

    /// Pages of the file at `path` in the page cache (mincore over a mapping of it).
    fn cached_pages(path: &std::path::Path) -> usize {
        let f = File::open(path).unwrap();
        let len = f.metadata().unwrap().len() as usize;
        // SAFETY: a private read-only mapping of a file we own, unmapped before return;
        // mincore writes one byte per page into `v`, which has that many.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                f.as_raw_fd(),
                0,
            );
            assert_ne!(p, libc::MAP_FAILED);
            let page = libc::sysconf(libc::_SC_PAGESIZE) as usize;
            let mut v = vec![0u8; len.div_ceil(page)];
            assert_eq!(libc::mincore(p, len, v.as_mut_ptr()), 0);
            libc::munmap(p, len);
            v.iter().filter(|&&b| b & 1 == 1).count()
        }
    }

    #[test]
    fn pass_files_leave_the_page_cache() {
        // On a disk-backed directory (tmpfs pages cannot be dropped).
        let dir =
            tempfile::tempdir_in(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target")).unwrap();
        let path = dir.path().join("pass");
        let total = 48usize << 20;
        let block = vec![7u8; 1 << 16];
        let write = |uncached: bool| {
            let f = File::create(&path).unwrap();
            if uncached {
                let mut w = PassWriter::new(1 << 20, f);
                for _ in 0..total / block.len() {
                    w.write_all(&block).unwrap();
                }
                w.finish().unwrap()
            } else {
                let mut w = BufWriter::with_capacity(1 << 20, f);
                for _ in 0..total / block.len() {
                    w.write_all(&block).unwrap();
                }
                w.into_inner().unwrap()
            }
        };
        let pages = total / 4096;
        // Without: (nearly) all cached, so the check can tell.
        drop(write(false));
        let plain = cached_pages(&path);
        drop(write(true));
        let kept = cached_pages(&path);
        assert!(plain > pages / 2, "plain writes cached {plain} of {pages}");
        assert!(kept < pages / 20, "{kept} of {pages} pages still cached");
        assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, total);
    }
}
