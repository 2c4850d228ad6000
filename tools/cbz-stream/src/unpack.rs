//! `unpack`: streaming extraction, one entry in flight, that trusts nothing in the
//! archive. Before a byte is written, the whole central directory is checked: names that
//! would escape the output directory (`..`, absolute paths, drive letters, backslashes,
//! NUL), symlink entries, encrypted entries, duplicate names (case-insensitively: the
//! output may be on a case-insensitive file system), a file that is also a directory,
//! and limits on the entry count, each entry's and the total expanded size and the
//! compression ratio (zip bombs), derived from the budget and the free disk space. Any
//! of these fails the whole archive with a `hostile` error record. Entries are then
//! written into a fresh temporary directory beside the output (files created with
//! `create_new`, so nothing existing is followed or overwritten), each one's CRC checked
//! and its size held to what it declared, and the directory is renamed into place only
//! when every entry is in: a bad archive leaves nothing behind.

use crate::archive::{self, Kind};
use crate::{natural, UnpackOpts, NAME};
use anyhow::Result;
use membudget::cli::{LogArgs, Status};
use membudget::outputs::Claim;
use membudget::{Error, Record};
use std::collections::HashSet;
use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// `--help` text.
pub const LONG_ABOUT: &str = "Extracts each archive into a directory named after it \
(`a.cbz` -> `a/`), beside it or mirrored under `-o DIR`, streaming one entry at a time. \
Nothing in the archive is trusted: before anything is written, every name is checked \
(no `..`, absolute paths, drive letters, backslashes), symlink entries and encrypted \
entries are refused, duplicate names (case-insensitive) are refused, and the entry \
count, each entry's and the total expanded size and the compression ratio are held to \
limits derived from the memory budget and the free disk space (see --max-*). Any \
violation fails the archive with a `hostile` error record. Entries go into a temporary \
directory, each CRC is checked and each size held to its declared value, and the \
directory is renamed into place only when complete. With --emit-records, one record per \
page (path = the extracted page, `cbz-stream.entry` = its name in the archive, \
`cbz-stream.comic_info` = the extracted ComicInfo.xml) so that `cbz-stream unpack \
--emit-records a.cbz | <stage> | cbz-stream pack -o b.cbz` works and keeps the ComicInfo.";

/// Entries larger than this are held to `--max-ratio` (small XML compresses far better
/// than images, legitimately).
const RATIO_FLOOR: u64 = 1 << 20;
/// Memory an archive's central directory costs per entry, about (the zip crate's entry
/// record and name, our name set): the budget bounds the entry count through it.
const BYTES_PER_ENTRY: u64 = 1024;
/// Entries at most whatever the budget.
const MAX_ENTRIES: u64 = 1_000_000;

/// Why `name` cannot be extracted as it is, if it cannot.
pub fn check_name(name: &str) -> Result<(), Error> {
    let bad = |why: &str| Err(Error::hostile(format!("entry {name:?}: {why}")));
    if name.is_empty() {
        return bad("empty name");
    }
    if name.contains('\0') {
        return bad("NUL in name");
    }
    if name.contains('\\') {
        return bad("backslash in name (a Windows path separator)");
    }
    if name.starts_with('/') {
        return bad("absolute path");
    }
    let b = name.as_bytes();
    if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
        return bad("drive-letter path");
    }
    if name.split('/').any(|c| c == "..") {
        return bad("'..' escapes the output directory");
    }
    if name.split('/').all(|c| c.is_empty() || c == ".") {
        return bad("no file name");
    }
    Ok(())
}

/// The relative path of a checked name (`.` and empty components dropped).
fn relative(name: &str) -> PathBuf {
    name.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect()
}

/// The canonical key of a name for duplicate detection.
fn key(name: &str) -> String {
    relative(name).to_string_lossy().to_lowercase()
}

/// The limits one archive is held to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Entries at most.
    pub entries: u64,
    /// Expanded bytes of one entry at most.
    pub entry_bytes: u64,
    /// Expanded bytes of the archive at most.
    pub total_bytes: u64,
    /// Expansion ratio at most (entries over 1 MiB).
    pub ratio: u64,
}

/// An entry to extract.
struct Entry {
    index: usize,
    name: String,
    dir: bool,
    size: u64,
}

/// Check the central directory against `limits`; the entries to write.
fn check_directory(a: &mut archive::Archive, limits: &Limits) -> Result<Vec<Entry>, Error> {
    let n = a.len() as u64;
    if n > limits.entries {
        return Err(Error::hostile(format!(
            "{n} entries, more than the {} allowed (--max-entries)",
            limits.entries
        )));
    }
    // The zip crate keeps only the last of same-named entries: which one a reader
    // extracts differs between tools, a classic way to smuggle a file past a check.
    if a.has_duplicate_names() {
        return Err(Error::hostile("several entries have the same name"));
    }
    let mut keys = HashSet::new();
    let mut entries = Vec::with_capacity(a.len());
    let mut total = 0u64;
    for i in 0..a.len() {
        let e = a.by_index_data(i).map_err(archive::zip_err)?;
        let name = e
            .name()
            .map_err(|_| Error::hostile(format!("entry {i}: name is not text")))?
            .into_owned();
        check_name(&name)?;
        if e.is_symlink() {
            return Err(Error::hostile(format!(
                "entry {name:?} is a symbolic link (never created)"
            )));
        }
        if e.encrypted() {
            return Err(Error::unsupported(format!("entry {name:?} is encrypted")));
        }
        if !keys.insert(key(&name)) {
            return Err(Error::hostile(format!(
                "entry {name:?} appears twice (names compared case-insensitively)"
            )));
        }
        let (size, csize) = (e.size(), e.compressed_size());
        if size > limits.entry_bytes {
            return Err(Error::hostile(format!(
                "entry {name:?} expands to {size} bytes, more than the {} allowed \
                 (--max-entry-size; default: the total limit, 90% of the free disk space)",
                limits.entry_bytes
            )));
        }
        total = total.saturating_add(size);
        if total > limits.total_bytes {
            return Err(Error::hostile(format!(
                "entries expand to more than {} bytes (--max-total-size, default 90% of the free disk space)",
                limits.total_bytes
            )));
        }
        if size > RATIO_FLOOR && size > limits.ratio.saturating_mul(csize.max(1)) {
            return Err(Error::hostile(format!(
                "entry {name:?} expands {size} bytes from {csize} (over {}:1): a decompression bomb",
                limits.ratio
            )));
        }
        entries.push(Entry {
            index: i,
            dir: e.is_dir(),
            name,
            size,
        });
    }
    // A file whose name is also a directory of another entry (`a` and `a/b`).
    let files: HashSet<String> = entries
        .iter()
        .filter(|e| !e.dir)
        .map(|e| key(&e.name))
        .collect();
    for e in &entries {
        let rel = relative(&e.name);
        for anc in rel.ancestors().skip(1) {
            let k = anc.to_string_lossy().to_lowercase();
            if !k.is_empty() && files.contains(&k) {
                return Err(Error::hostile(format!(
                    "entry {:?} is inside {k:?}, which is a file",
                    e.name
                )));
            }
        }
    }
    Ok(entries)
}

/// Copy one entry's data into `out`, holding it to its declared size.
fn copy_entry(
    r: &mut impl Read,
    out: &mut impl Write,
    declared: u64,
    name: &str,
) -> Result<(), Error> {
    let mut buf = vec![0u8; archive::COPY_BUF];
    let mut n = 0u64;
    loop {
        let k = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let e = archive::io_err(e);
                return Err(Error::new(e.kind, format!("entry {name:?}: {}", e.message)));
            }
        };
        n += k as u64;
        if n > declared {
            return Err(Error::hostile(format!(
                "entry {name:?} expands beyond its declared {declared} bytes"
            )));
        }
        out.write_all(&buf[..k])?;
    }
    if n != declared {
        return Err(Error::corrupt(format!(
            "entry {name:?} holds {n} bytes, {declared} declared"
        )));
    }
    Ok(())
}

/// Extract `a` into the new directory `dest` (which must not exist, or is replaced).
/// Returns the entries written.
fn extract(a: &mut archive::Archive, entries: &[Entry], dest: &Path) -> Result<(), Error> {
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    // Named for its owner (not `.<stem>.<random>.part`), so the next run into this
    // directory removes it when this one is killed.
    let tmp = membudget::outputs::scratch_dir(parent, &crate::stem(dest).to_string_lossy())?;
    for e in entries {
        let rel = relative(&e.name);
        let path = tmp.path().join(&rel);
        if e.dir {
            std::fs::create_dir_all(&path)?;
            continue;
        }
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p)?;
        }
        let mut entry = a.by_index(e.index).map_err(archive::zip_err)?;
        // create_new: never follows or replaces anything already there.
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        let mut w = io::BufWriter::with_capacity(archive::COPY_BUF, file);
        copy_entry(&mut entry, &mut w, e.size, &e.name)?;
        w.flush()?;
    }
    if dest.is_dir() {
        std::fs::remove_dir_all(dest)?;
    } else if dest.exists() {
        std::fs::remove_file(dest)?;
    }
    let kept = tmp.keep();
    if let Err(e) = std::fs::rename(&kept, dest) {
        let _ = std::fs::remove_dir_all(&kept);
        return Err(e.into());
    }
    Ok(())
}

/// Run `unpack`.
pub fn run(o: &UnpackOpts, log: &LogArgs) -> Result<Status> {
    // Archives side by side, each within its share of the budget; no model of the
    // least need (one entry in flight).
    o.processing.for_each_record(
        NAME,
        &o.input,
        log,
        |_| None,
        |record, job, room| {
            let input = record.path();
            let dest = o.output.output_path(&input, crate::stem(&input))?;
            record.set_in(NAME, "op", "unpack");
            if !crate::begin(record, job, &o.output, &dest)? {
                return Ok(());
            }
            // The claim on the directory: a second run into the same place skips it
            // instead of racing this one's rename.
            let _claim = match membudget::outputs::lock(&dest)? {
                Claim::Mine(l) => l,
                Claim::Busy(pid) => {
                    record.set_in(NAME, "status", "skipped");
                    record.set_in(NAME, "reason", Claim::busy_reason(pid));
                    return Ok(());
                }
            };
            if dest.exists() && !o.output.force {
                record.set_in(NAME, "status", "skipped");
                record.set_in(NAME, "reason", "output exists (use --force to overwrite)");
                return Ok(());
            }
            let budget_bytes = room.budget;
            let mut a = archive::open(&input)?;
            let parent = dest
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let free = membudget::outputs::free_space(parent).unwrap_or(u64::MAX);
            let total_bytes = o.max_total_size.unwrap_or(free / 10 * 9);
            let limits = Limits {
                entries: o.max_entries.unwrap_or(
                    (budget_bytes.saturating_sub(16 << 20) / BYTES_PER_ENTRY)
                        .clamp(1000, MAX_ENTRIES),
                ),
                entry_bytes: o.max_entry_size.unwrap_or(total_bytes).min(total_bytes),
                total_bytes,
                ratio: o.max_ratio.max(1),
            };
            let entries = check_directory(&mut a, &limits)?;
            extract(&mut a, &entries, &dest)?;
            let mut pages: Vec<&Entry> = entries
                .iter()
                .filter(|e| archive::kind(&e.name) == Kind::Page)
                .collect();
            pages.sort_by(|x, y| natural::cmp(&x.name, &y.name));
            if o.emit_records {
                // The archive's ComicInfo travels with every page record, so that `pack` at
                // the end of the pipe keeps it (brought up to date) instead of writing a new
                // one without its metadata.
                let comic = entries
                    .iter()
                    .find(|e| archive::kind(&e.name) == Kind::ComicInfo)
                    .map(|e| dest.join(relative(&e.name)).to_string_lossy().into_owned());
                for (k, e) in pages.iter().enumerate() {
                    let page_path = dest.join(relative(&e.name));
                    let mut r: Record = record.with_path(&page_path);
                    r.set_in(NAME, "archive", input.to_string_lossy().into_owned());
                    r.set_in(NAME, "entry", e.name.clone());
                    if let Some(c) = &comic {
                        r.set_in(NAME, "comic_info", c.clone());
                    }
                    r.set_in(NAME, "page", k + 1);
                    r.set_in(NAME, "status", "ok");
                    job.emit(r)?;
                }
                if pages.is_empty() {
                    record.set_in(NAME, "status", "ok");
                    record.set_in(NAME, "pages", 0);
                }
                return Ok(());
            }
            record.set_in(NAME, "status", "ok");
            record.set_in(NAME, "entries", entries.len());
            record.set_in(NAME, "pages", pages.len());
            record.set_in(NAME, "bytes", entries.iter().map(|e| e.size).sum::<u64>());
            Ok(())
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use membudget::ErrorKind;

    #[test]
    fn names() {
        for bad in [
            "../x.jpg",
            "a/../../x",
            "/etc/passwd",
            "C:/x.jpg",
            "c:x",
            "a\\..\\x",
            "a\\b.jpg",
            "",
            "./",
            "a\0b",
        ] {
            assert_eq!(
                check_name(bad).unwrap_err().kind,
                ErrorKind::Hostile,
                "{bad:?}"
            );
        }
        for good in ["001.jpg", "a/b/c.png", "./x.jpg", "a..b/c", "dir/"] {
            assert!(check_name(good).is_ok(), "{good:?}");
        }
        assert_eq!(relative("./a//b"), PathBuf::from("a/b"));
        assert_eq!(key("A/B.jpg"), key("./a/b.JPG"));
    }
}
