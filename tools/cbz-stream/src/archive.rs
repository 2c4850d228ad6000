//! What every subcommand does with ZIP archives: open one (after the header probe's
//! hostile-claim checks), name entries' kinds (page, ComicInfo, junk), read an image's
//! dimensions from the first bytes of an entry, write entries with the right method, and
//! verify a written archive by reading it back (entry count, every CRC).

use membudget::probe::{self, Format};
use membudget::{Error, ErrorKind};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::path::Path;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipArchive};

/// Bytes read from the start of an image to find its dimensions: JPEG frame headers come
/// after EXIF/ICC segments, which stay well below this in scans and comic pages.
pub const HEAD_BYTES: u64 = 256 << 10;

/// Copy buffer: large enough that the copy loop is not the bottleneck.
pub const COPY_BUF: usize = 256 << 10;

/// A ZIP error as a record's error.
pub fn zip_err(e: zip::result::ZipError) -> Error {
    use zip::result::ZipError as Z;
    match e {
        Z::Io(io) => io_err(io),
        Z::UnsupportedArchive(m) => Error::unsupported(format!("ZIP: {m}")),
        Z::FileNotFound => Error::corrupt("ZIP entry not found"),
        other => Error::corrupt(format!("ZIP: {other}")),
    }
}

/// An I/O error while reading an entry: the zip crate reports a CRC mismatch as
/// `InvalidData` ("Invalid checksum"), which is corruption, not an I/O failure.
pub fn io_err(e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::InvalidData => Error::corrupt(format!("ZIP entry: {e}")),
        _ => Error::from(e),
    }
}

/// An open archive.
pub type Archive = ZipArchive<BufReader<File>>;

/// Open `path` as a ZIP archive, refusing what the header probe calls hostile (entries
/// claiming more data than the file holds, overlapping entries, impossible ratios).
pub fn open(path: &Path) -> Result<Archive, Error> {
    let file = File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(Error::unsupported("not a regular file"));
    }
    probe::zip::read_directory(BufReader::new(&file), meta.len())?;
    let mut reader = BufReader::with_capacity(64 << 10, file);
    reader.rewind()?;
    ZipArchive::new(reader).map_err(zip_err)
}

/// The kind of an entry, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A page image.
    Page,
    /// `ComicInfo.xml` at the root.
    ComicInfo,
    /// Files archivers and OSes leave behind: `.nfo`, `.sfv`, `.db`, `.DS_Store`,
    /// `Thumbs.db`, `desktop.ini`, anything under `__MACOSX/`.
    Junk,
    /// A directory entry.
    Directory,
    /// Anything else (text, credits...).
    Other,
}

/// Classify an entry or file name (`/`-separated).
pub fn kind(name: &str) -> Kind {
    if name.ends_with('/') {
        return Kind::Directory;
    }
    if name.starts_with("__MACOSX/") || name.contains("/__MACOSX/") {
        return Kind::Junk;
    }
    let base = name.rsplit('/').next().unwrap_or(name);
    if name.eq_ignore_ascii_case("ComicInfo.xml") {
        return Kind::ComicInfo;
    }
    let lower = base.to_ascii_lowercase();
    if matches!(lower.as_str(), ".ds_store" | "thumbs.db" | "desktop.ini")
        || base.starts_with("._")
        || [".nfo", ".sfv", ".db"].iter().any(|e| lower.ends_with(e))
    {
        return Kind::Junk;
    }
    let ext = crate::natural::extension(base);
    if probe::zip::IMAGE_EXTENSIONS
        .iter()
        .any(|e| e.eq_ignore_ascii_case(ext))
    {
        return Kind::Page;
    }
    Kind::Other
}

/// Whether an entry of this name is compressed when written: XML and text are; images
/// (already compressed) are stored as they are.
pub fn deflate(name: &str) -> bool {
    kind(name) != Kind::Page
}

/// Options for a new entry of `size` bytes (Zip64 when it needs it).
pub fn options(name: &str, size: u64, modified: DateTime) -> SimpleFileOptions {
    let method = if deflate(name) {
        CompressionMethod::Deflated
    } else {
        CompressionMethod::Stored
    };
    SimpleFileOptions::default()
        .compression_method(method)
        .large_file(size >= u64::from(u32::MAX))
        .unix_permissions(0o644)
        .last_modified_time(modified)
}

/// A file's modification time as a ZIP (MS-DOS) time, in UTC; 1980-01-01 when it cannot
/// be represented.
pub fn zip_time(t: std::time::SystemTime) -> DateTime {
    let Ok(d) = t.duration_since(std::time::UNIX_EPOCH) else {
        return DateTime::default();
    };
    let secs = d.as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Days to civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + i64::from(month <= 2);
    let Ok(year) = u16::try_from(year) else {
        return DateTime::default();
    };
    DateTime::from_date_and_time(
        year,
        month,
        day,
        (rem / 3600) as u8,
        (rem / 60 % 60) as u8,
        (rem % 60) as u8,
    )
    .unwrap_or_default()
}

/// An image's format and dimensions, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageHead {
    /// JPEG, PNG, JP2...
    pub format: Format,
    /// Width in pixels.
    pub width: u64,
    /// Height in pixels.
    pub height: u64,
}

/// Read an image's dimensions from `head` (the first [`HEAD_BYTES`] of it) with the
/// header probes; `None` when the format is not one they know or the header is broken.
pub fn image_head(head: &[u8]) -> Option<ImageHead> {
    let format = probe::sniff(head)?;
    let p = match format {
        Format::Jpeg => probe::raster::probe_jpeg_reader(head).ok()?,
        Format::Png => probe::raster::probe_png_reader(io::Cursor::new(head)).ok()?,
        _ => return None,
    };
    let img = p.image?;
    Some(ImageHead {
        format,
        width: img.width,
        height: img.height,
    })
}

/// The first [`HEAD_BYTES`] of a reader.
pub fn read_head(r: impl Read) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(8192);
    r.take(HEAD_BYTES).read_to_end(&mut head)?;
    Ok(head)
}

/// Bytes written between two [`Writeback`] hints.
const WRITEBACK_BYTES: u64 = 8 << 20;

/// Starts the disk writes of an output's dirty pages every [`WRITEBACK_BYTES`], so that
/// the fsync before the output is renamed into place waits for the last few megabytes
/// instead of the whole archive: the rest went to disk while later pages were read.
/// Only a hint (`sync_file_range` with `SYNC_FILE_RANGE_WRITE`, which does not wait for
/// the writes): durability still comes from that fsync.
#[derive(Debug)]
pub struct Writeback {
    /// The output's descriptor; the file outlives this (it is the output being written).
    fd: std::os::fd::RawFd,
    pending: u64,
}

impl Writeback {
    /// For output `file`.
    pub fn new(file: &std::fs::File) -> Writeback {
        use std::os::fd::AsRawFd;
        Writeback {
            fd: file.as_raw_fd(),
            pending: 0,
        }
    }

    /// `n` more bytes were written.
    pub fn wrote(&mut self, n: u64) {
        self.pending += n;
        if self.pending >= WRITEBACK_BYTES {
            self.pending = 0;
            // SAFETY: a plain system call on a descriptor; a failure (a file system
            // without writeback, a closed descriptor) only means no early writes.
            unsafe {
                libc::sync_file_range(self.fd, 0, 0, libc::SYNC_FILE_RANGE_WRITE);
            }
        }
    }
}

/// Put a written archive into place once checked ([`verify`]: `expected` entries, every
/// CRC); returns its size.
pub fn commit_verified(
    mut atomic: membudget::cli::AtomicFile,
    expected: usize,
) -> Result<u64, Error> {
    verify(atomic.temp_path(), expected)?;
    let bytes = atomic.file().metadata()?.len();
    atomic.commit()?;
    Ok(bytes)
}

/// Read an archive back and check it: `expected` entries, each one's data read through
/// the decompressor and its CRC checked. Shares no code with the writers: it goes
/// through the zip crate's reader only.
pub fn verify(path: &Path, expected: usize) -> Result<(), Error> {
    let verify_err = |e: Error| Error::new(ErrorKind::Verify, format!("verification: {e}"));
    let mut a = open(path).map_err(verify_err)?;
    if a.len() != expected {
        return Err(Error::new(
            ErrorKind::Verify,
            format!(
                "verification: {} entries written, {expected} expected",
                a.len()
            ),
        ));
    }
    let mut buf = vec![0u8; COPY_BUF];
    for i in 0..a.len() {
        let mut e = a.by_index(i).map_err(|e| verify_err(zip_err(e)))?;
        let mut n = 0u64;
        loop {
            match e.read(&mut buf) {
                Ok(0) => break,
                Ok(k) => n += k as u64,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(verify_err(io_err(err))),
            }
        }
        if n != e.size() {
            return Err(Error::new(
                ErrorKind::Verify,
                format!(
                    "verification: entry {:?} holds {n} bytes, {} declared",
                    e.name().unwrap_or_default(),
                    e.size()
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(kind("001.JPG"), Kind::Page);
        assert_eq!(kind("a/b.webp"), Kind::Page);
        assert_eq!(kind("ComicInfo.xml"), Kind::ComicInfo);
        assert_eq!(kind("comicinfo.XML"), Kind::ComicInfo);
        assert_eq!(kind("sub/ComicInfo.xml"), Kind::Other);
        assert_eq!(kind("__MACOSX/._001.jpg"), Kind::Junk);
        assert_eq!(kind("x/.DS_Store"), Kind::Junk);
        assert_eq!(kind("Thumbs.db"), Kind::Junk);
        assert_eq!(kind("release.NFO"), Kind::Junk);
        assert_eq!(kind("a.sfv"), Kind::Junk);
        assert_eq!(kind("credits.txt"), Kind::Other);
        assert_eq!(kind("dir/"), Kind::Directory);
    }

    #[test]
    fn zip_times() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let d = zip_time(t);
        // 2023-11-14 22:13:20 UTC
        assert_eq!(
            (
                d.year(),
                d.month(),
                d.day(),
                d.hour(),
                d.minute(),
                d.second()
            ),
            (2023, 11, 14, 22, 13, 20)
        );
        assert_eq!(zip_time(std::time::UNIX_EPOCH), DateTime::default());
    }
}
