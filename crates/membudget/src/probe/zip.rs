//! ZIP and CBZ probe: the central directory only, never the entries' data.
//!
//! `zip::ZipArchive::new` reads the end-of-central-directory record and the central
//! directory (it bounds the entry count it allocates for by the directory's size), and
//! `by_index_data` gives each entry's metadata without touching its local header. From
//! that the probe sums sizes, finds the largest entry, counts page images, and flags what
//! an extractor must not trust: zip-slip names (absolute, drive letters, `..`) and
//! compression ratios over [`BOMB_RATIO`] are warnings; claims no real archive can make
//! (entries whose compressed data would not fit in the file, a stored entry whose sizes
//! differ, a deflated one beyond DEFLATE's maximum ratio) are a [`crate::ErrorKind::Hostile`] error.

use super::{ArchiveSummary, Detail, Format, Probe};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use zip::CompressionMethod;

/// Uncompressed-to-compressed ratio above which an entry is reported as a likely
/// decompression bomb (real images and text stay far below it).
pub const BOMB_RATIO: u64 = 100;
/// DEFLATE cannot expand more than ~1032:1 (a 258-byte match per ~2 bits); allow some
/// slack for block headers before calling a claim impossible.
const DEFLATE_MAX_RATIO: u64 = 1100;
/// Extensions counted as page images (lowercase).
pub const IMAGE_EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "png", "gif", "webp", "avif", "jxl", "bmp", "tif", "tiff",
];

/// A ZIP central directory, summed up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZipInfo {
    /// Entries in the central directory (directories included).
    pub entries: u64,
    /// Directory entries.
    pub directories: u64,
    /// Sum of compressed sizes.
    pub compressed_bytes: u64,
    /// Sum of uncompressed sizes.
    pub uncompressed_bytes: u64,
    /// The entry with the largest uncompressed size.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub largest_entry: Option<LargestEntry>,
    /// Entries named like images ([`IMAGE_EXTENSIONS`]), outside `__MACOSX/`.
    pub image_entries: u64,
    /// A `ComicInfo.xml` at the archive root (CBZ metadata).
    pub comic_info: bool,
    /// Entries per compression method (`stored`, `deflate`, `bzip2`, ...).
    pub methods: BTreeMap<String, u64>,
    /// Encrypted entries.
    pub encrypted_entries: u64,
    /// Entries an extractor must not trust as they are.
    pub warnings: Vec<ZipWarning>,
}

/// The largest entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LargestEntry {
    /// Its name.
    pub name: String,
    /// Its uncompressed size.
    pub bytes: u64,
}

/// Something suspicious about one entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZipWarning {
    /// The entry name.
    pub entry: String,
    /// `absolute_path`, `parent_dir` (zip-slip), `ratio` (likely bomb), `duplicate_name`.
    pub issue: String,
    /// Details for a person.
    pub message: String,
}

/// The name of a compression method (APPNOTE 4.4.5), lowercase.
fn method_name(m: CompressionMethod) -> String {
    const NAMES: &[(CompressionMethod, &str)] = &[
        (CompressionMethod::STORE, "stored"),
        (CompressionMethod::SHRINK, "shrink"),
        (CompressionMethod::IMPLODE, "implode"),
        (CompressionMethod::DEFLATE, "deflate"),
        (CompressionMethod::DEFLATE64, "deflate64"),
        (CompressionMethod::BZIP2, "bzip2"),
        (CompressionMethod::LZMA, "lzma"),
        (CompressionMethod::ZSTD, "zstd"),
        (CompressionMethod::XZ, "xz"),
        (CompressionMethod::JPEG, "jpeg"),
        (CompressionMethod::PPMD, "ppmd"),
        (CompressionMethod::AES, "aes"),
    ];
    NAMES
        .iter()
        .find(|(c, _)| *c == m)
        .map_or_else(|| m.to_string().to_lowercase(), |(_, n)| (*n).to_string())
}

fn map_zip_error(e: zip::result::ZipError) -> Error {
    use zip::result::ZipError as Z;
    match e {
        Z::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            Error::corrupt(format!("ZIP file truncated: {io}"))
        }
        Z::Io(io) => io.into(),
        Z::UnsupportedArchive(m) => Error::unsupported(format!("ZIP: {m}")),
        other => Error::corrupt(format!("ZIP central directory: {other}")),
    }
}

/// Why a name would write outside the extraction directory, if it would.
fn unsafe_name(name: &str) -> Option<(&'static str, &'static str)> {
    let bytes = name.as_bytes();
    if name.starts_with('/') || name.starts_with('\\') {
        return Some(("absolute_path", "absolute path"));
    }
    if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
        return Some(("absolute_path", "drive-letter path"));
    }
    if name.split(['/', '\\']).any(|c| c == "..") {
        return Some((
            "parent_dir",
            "'..' component escapes the extraction directory",
        ));
    }
    None
}

fn is_image_name(name: &str) -> bool {
    // macOS archivers add `__MACOSX/._name.jpg` resource forks: not images.
    if name.starts_with("__MACOSX/") || name.ends_with('/') {
        return false;
    }
    name.rsplit_once('.')
        .is_some_and(|(_, ext)| IMAGE_EXTENSIONS.iter().any(|e| e.eq_ignore_ascii_case(ext)))
}

/// Whether the file ends with a ZIP end-of-central-directory record, found as Python's
/// zipfile finds it (`_EndRecData`): at 22 bytes from the end, else the last `PK\5\6` in
/// the final 64 KiB + 22 bytes (the longest comment), whole. Archives with data before
/// them (self-extracting ones) start with that data, so the first bytes do not tell.
pub fn has_end_record(path: &Path, len: u64) -> Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    const RECORD: u64 = 22;
    if len < RECORD {
        return Ok(false);
    }
    let tail = len.min(RECORD + 65_535);
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(len - tail))?;
    let mut buf = Vec::with_capacity(tail as usize);
    f.take(tail).read_to_end(&mut buf)?;
    Ok(buf
        .windows(4)
        .rposition(|w| w == b"PK\x05\x06")
        .is_some_and(|at| buf.len() - at >= RECORD as usize))
}

/// Probe a ZIP (or CBZ) file.
pub fn probe(path: &Path) -> Result<Probe> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let info = read_directory(BufReader::new(file), len)?;
    let archive = ArchiveSummary {
        entries: info.entries,
        uncompressed_bytes: info.uncompressed_bytes,
        largest_entry_bytes: info.largest_entry.as_ref().map_or(0, |l| l.bytes),
        image_entries: info.image_entries,
    };
    Ok(Probe {
        format: Format::Zip,
        bytes: len,
        image: None,
        points: None,
        archive: Some(archive),
        document: None,
        detail: Detail::Zip(info),
    })
}

/// Reads and sums up the central directory of a ZIP of `len` bytes.
pub fn read_directory<R: std::io::Read + std::io::Seek>(reader: R, len: u64) -> Result<ZipInfo> {
    let archive = zip::ZipArchive::new(reader).map_err(map_zip_error)?;
    let mut info = ZipInfo {
        entries: archive.len() as u64,
        directories: 0,
        compressed_bytes: 0,
        uncompressed_bytes: 0,
        largest_entry: None,
        image_entries: 0,
        comic_info: false,
        methods: BTreeMap::new(),
        encrypted_entries: 0,
        warnings: Vec::new(),
    };
    if archive.has_duplicate_names() {
        info.warnings.push(ZipWarning {
            entry: String::new(),
            issue: "duplicate_name".into(),
            message: "several entries share a name; only the last is counted".into(),
        });
    }
    for i in 0..archive.len() {
        let e = archive.by_index_data(i).map_err(map_zip_error)?;
        let name = match e.name() {
            Ok(n) => n.into_owned(),
            Err(_) => String::from_utf8_lossy(e.name_raw()).into_owned(),
        };
        let (csize, usize_) = (e.compressed_size(), e.size());
        let method = e.compression();
        *info.methods.entry(method_name(method)).or_default() += 1;
        if e.encrypted() {
            info.encrypted_entries += 1;
        }
        // Claims no writer can produce: the data of one entry larger than the file,
        // a stored entry that changes size, DEFLATE beyond its maximum ratio.
        let impossible = if csize > len {
            Some(format!(
                "claims {csize} compressed bytes in a {len}-byte file"
            ))
        } else if method == CompressionMethod::STORE && !e.encrypted() && csize != usize_ {
            Some(format!(
                "is stored but claims {csize} bytes on disk and {usize_} unpacked"
            ))
        } else if method == CompressionMethod::DEFLATE
            && usize_ > csize.saturating_mul(DEFLATE_MAX_RATIO).saturating_add(1024)
        {
            Some(format!(
                "claims {usize_} bytes from {csize} deflated bytes, beyond DEFLATE's maximum ratio"
            ))
        } else {
            None
        };
        if let Some(why) = impossible {
            return Err(Error::hostile(format!("ZIP entry {name:?} {why}")));
        }
        info.compressed_bytes = info.compressed_bytes.saturating_add(csize);
        info.uncompressed_bytes = info.uncompressed_bytes.saturating_add(usize_);
        if e.is_dir() {
            info.directories += 1;
        }
        if let Some((issue, message)) = unsafe_name(&name) {
            info.warnings.push(ZipWarning {
                entry: name.clone(),
                issue: issue.into(),
                message: message.into(),
            });
        }
        if usize_ > BOMB_RATIO.saturating_mul(csize.max(1)) {
            info.warnings.push(ZipWarning {
                entry: name.clone(),
                issue: "ratio".into(),
                message: format!(
                    "expands {usize_} bytes from {csize} ({}:1): likely a decompression bomb",
                    usize_ / csize.max(1)
                ),
            });
        }
        if is_image_name(&name) {
            info.image_entries += 1;
        }
        if name.eq_ignore_ascii_case("ComicInfo.xml") {
            info.comic_info = true;
        }
        if info.largest_entry.as_ref().is_none_or(|l| usize_ > l.bytes) {
            info.largest_entry = Some(LargestEntry {
                name,
                bytes: usize_,
            });
        }
    }
    // Entries' data cannot add up to more than the file unless they overlap, which is
    // how overlapping-entry bombs get their ratio.
    if info.compressed_bytes > len {
        return Err(Error::hostile(format!(
            "ZIP entries claim {} compressed bytes in a {len}-byte file (overlapping entries)",
            info.compressed_bytes
        )));
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            unsafe_name("../etc/passwd").map(|u| u.0),
            Some("parent_dir")
        );
        assert_eq!(unsafe_name("a/../../b").map(|u| u.0), Some("parent_dir"));
        assert_eq!(
            unsafe_name("/etc/passwd").map(|u| u.0),
            Some("absolute_path")
        );
        assert_eq!(unsafe_name("C:\\x").map(|u| u.0), Some("absolute_path"));
        assert_eq!(unsafe_name("a..b/c.jpg"), None);
        assert!(is_image_name("p/001.JPG"));
        assert!(!is_image_name("__MACOSX/._001.jpg"));
        assert!(!is_image_name("ComicInfo.xml"));
    }

    /// A ZIP appended to an executable stub (a self-extracting archive) is found by its
    /// end-of-central-directory record, as Python's zipfile finds it.
    #[test]
    fn self_extracting_zip_is_a_zip() {
        use super::super::{probe_path, Format};
        use std::io::Write;
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default();
        for name in ["a.jpg", "b.txt"] {
            zip.start_file(name, opts).unwrap();
            zip.write_all(b"some bytes of an entry").unwrap();
        }
        let zip = zip.finish().unwrap().into_inner();
        let dir = tempfile::tempdir().unwrap();
        for (stub, comment) in [(b"MZ\x90\0".as_slice(), false), (b"\x7fELF", true)] {
            let mut f = stub.to_vec();
            f.resize(5000, 0x41);
            f.extend_from_slice(&zip);
            if comment {
                // An archive comment: the record is then not in the last 22 bytes.
                let n = f.len();
                f[n - 2..].copy_from_slice(&5u16.to_le_bytes());
                f.extend_from_slice(b"hello");
            }
            let p = dir.path().join("sfx.exe");
            std::fs::write(&p, &f).unwrap();
            let probe = probe_path(&p).unwrap();
            assert_eq!(probe.format, Format::Zip);
            assert_eq!(probe.archive.unwrap().entries, 2);
        }
        // Not a ZIP: no record, or one cut short, stays an unknown format.
        let p = dir.path().join("stub.exe");
        std::fs::write(&p, b"MZ\x90\0 PK\x05\x06 short").unwrap();
        assert!(probe_path(&p).is_err());
    }
}
