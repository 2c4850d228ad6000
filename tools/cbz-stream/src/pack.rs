//! `pack`: page images into a CBZ, streamed entry by entry from disk into the archive
//! through a fixed buffer (memory does not grow with the archive). Images are stored as
//! they are, XML and text deflated, Zip64 used where an entry or the archive needs it.
//! Pages go in natural order and, unless `--keep-names`, are renamed zero-padded so plain
//! name order (what readers sort by) equals it. A ComicInfo.xml among the inputs is kept;
//! otherwise one is generated with PageCount and each page's size read from its header.

use crate::archive::{self, Kind};
use crate::comicinfo::{self, PageInfo};
use crate::natural;
use crate::{PackOpts, NAME};
use anyhow::Result;
use membudget::cli::{AtomicFile, LogArgs, Output, Status};
use membudget::{driver, monitor, Error, ErrorKind, Record};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;
use zip::DateTime;

/// `--help` text.
pub const LONG_ABOUT: &str = "Packs page images into a CBZ. With `-o FILE.cbz`, every input \
(directories expanded, files, or NDJSON page records on stdin such as `unpack \
--emit-records` writes) goes into that one archive, and one record describes it. \
Otherwise each input directory becomes `<dir>.cbz` beside it or mirrored under `-o DIR`, \
several directories at once with -j (-j and -m do not apply to the one archive). \
Entries are streamed from disk (never the archive in memory); images are stored as they \
are, XML and text deflated, Zip64 used past 4 GiB or 65,535 entries. Pages are sorted in \
natural order (numeric-aware, case-insensitive: `Page 2` before `Page 10`) and renamed \
zero-padded (`001.jpg`) so that name order equals it, unless --keep-names. A \
ComicInfo.xml at the top of the inputs is kept; the one page records from `unpack \
--emit-records` name is kept with its PageCount and Pages brought up to date with the \
pages packed; otherwise one is generated with \
PageCount and each page's ImageWidth/ImageHeight read from its header (--no-comic-info \
to skip). Junk files (.DS_Store, Thumbs.db, .nfo, .sfv, __MACOSX/) are left out. The \
archive is verified (entry count, every CRC) before it is renamed into place.";

/// One file to pack.
#[derive(Debug, Clone)]
pub struct Source {
    /// Where its bytes are.
    pub path: PathBuf,
    /// Its name in the archive under `--keep-names`, before any renaming (relative,
    /// `/`-separated).
    pub name: String,
    /// Its size.
    pub len: u64,
    /// Its modification time.
    pub modified: DateTime,
}

/// What was written.
#[derive(Debug, Default)]
pub struct Packed {
    /// Page images.
    pub pages: usize,
    /// Entries in the archive.
    pub entries: usize,
    /// `kept`, `generated` or `none`.
    pub comic_info: &'static str,
    /// Junk files left out.
    pub junk: usize,
    /// The archive's size.
    pub bytes: u64,
}

/// Run `pack`.
pub fn run(o: &PackOpts, log: &LogArgs) -> Result<Status> {
    if crate::names_file(&o.output, &["cbz", "zip"]) {
        pack_all(o, log)
    } else {
        pack_dirs(o, log)
    }
}

fn source(path: &Path, name: String) -> Result<Source, Error> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(Error::unsupported("not a regular file"));
    }
    Ok(Source {
        path: path.to_path_buf(),
        name,
        len: meta.len(),
        modified: meta
            .modified()
            .map_or_else(|_| DateTime::default(), archive::zip_time),
    })
}

/// Everything into the one archive `-o` names.
fn pack_all(o: &PackOpts, log: &LogArgs) -> Result<Status> {
    let started = Instant::now();
    let dest = o.output.output_dir.clone().unwrap_or_default();
    let mut input = o.input.clone();
    input.recursive = true;
    let mut sources = Vec::new();
    let mut comic_infos = std::collections::BTreeSet::new();
    let mut failed = 0usize;
    let mut status = driver::for_each_record(NAME, &input, log, |record, job| {
        let path = record.path();
        // A page record from `unpack --emit-records` carries its entry name.
        let entry = record
            .get(NAME)
            .and_then(|s| s.get("entry"))
            .and_then(|e| e.as_str())
            .map(str::to_string);
        // ... and the ComicInfo.xml of its archive.
        if let Some(c) = record.get(NAME).and_then(|s| s.get("comic_info")?.as_str()) {
            comic_infos.insert(PathBuf::from(c));
        }
        match source(&path, entry.unwrap_or_default()) {
            Ok(s) => {
                sources.push(s);
                job.discard();
                Ok(())
            }
            Err(e) => {
                failed += 1;
                Err(e)
            }
        }
    })?;
    relative_names(&mut sources);
    // Pages of one archive name one ComicInfo; pages of several, none is theirs.
    let from_records = match comic_infos.len() {
        1 => comic_infos.pop_first(),
        _ => None,
    };
    let mut record = Record::new(&dest);
    record.set_in(NAME, "op", "pack");
    let result = if failed > 0 {
        Err(Error::new(
            ErrorKind::NotFound,
            format!("{failed} input(s) could not be read: archive not written"),
        ))
    } else if sources.is_empty() {
        Err(Error::new(ErrorKind::NotFound, "no input files"))
    } else if crate::proceed(&mut record, &o.output, &dest) {
        crate::claim(&mut record, &o.output, &dest).and_then(|a| match a {
            Some(a) => {
                write(sources, from_records.as_deref(), a, o).map(|p| describe(&mut record, &p))
            }
            None => Ok(()),
        })
    } else {
        record.set_in(NAME, "inputs", sources.len());
        Ok(())
    };
    match result {
        Err(e) => record.set_error(NAME, &e),
        Ok(()) if record.get(NAME).and_then(|s| s.get("status")) == Some(&"ok".into()) => {
            record.set_in(
                NAME,
                "seconds",
                (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
            );
            if let Some(p) = monitor::peak_rss() {
                record.set_in(NAME, "peak_rss", p);
            }
        }
        Ok(()) => {}
    }
    let mut out = Output::new(NAME);
    out.write(&record)?;
    status = status.worst(out.status());
    Ok(status)
}

fn describe(record: &mut Record, p: &Packed) {
    record.set_in(NAME, "status", "ok");
    record.set_in(NAME, "pages", p.pages);
    record.set_in(NAME, "entries", p.entries);
    record.set_in(NAME, "comic_info", p.comic_info);
    record.set_in(NAME, "junk_skipped", p.junk);
    record.set_in(NAME, "bytes", p.bytes);
}

/// Names relative to the sources' common directory, for those without one (files
/// named on the command line or found under directories).
fn relative_names(sources: &mut [Source]) {
    let unnamed: Vec<&Path> = sources
        .iter()
        .filter(|s| s.name.is_empty())
        .map(|s| s.path.as_path())
        .collect();
    let Some(first) = unnamed.first() else {
        return;
    };
    let mut common: PathBuf = first.parent().unwrap_or(Path::new("")).to_path_buf();
    for p in &unnamed[1..] {
        while !p.starts_with(&common) {
            if !common.pop() {
                break;
            }
        }
    }
    for s in sources.iter_mut().filter(|s| s.name.is_empty()) {
        let rel = s.path.strip_prefix(&common).unwrap_or(&s.path);
        s.name = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
    }
}

/// Each input directory into its own archive.
fn pack_dirs(o: &PackOpts, log: &LogArgs) -> Result<Status> {
    // Directories side by side; no model of the least need (one page in flight).
    o.processing.for_each_record(
        NAME,
        &o.input,
        log,
        |_| None,
        |record, job, _room| {
            let dir = record.path();
            if !dir.is_dir() {
                return Err(Error::new(
                    ErrorKind::BadRecord,
                    "not a directory: give `-o FILE.cbz` to pack files into one archive",
                ));
            }
            let name = membudget::cli::stem_name(&dir, "out", ".cbz");
            let dest = o.output.output_path(&dir, &name)?;
            record.set_in(NAME, "op", "pack");
            if !crate::begin(record, job, &o.output, &dest)? {
                return Ok(());
            }
            let mut files = Vec::new();
            walk(&dir, &mut files)?;
            let mut sources = Vec::with_capacity(files.len());
            for f in files {
                let rel = f.strip_prefix(&dir).unwrap_or(&f);
                let name = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                sources.push(source(&f, name)?);
            }
            if sources.is_empty() {
                return Err(Error::new(ErrorKind::NotFound, "no files in the directory"));
            }
            let Some(atomic) = crate::claim(record, &o.output, &dest)? else {
                return Ok(());
            };
            let p = write(sources, None, atomic, o)?;
            describe(record, &p);
            Ok(())
        },
    )
}

/// Files below `dir`, hidden ones skipped, directory symlinks not followed (they can
/// loop). (membudget's `cli::inputs` walks the same way for `--recursive`, but hands out
/// records, not the tree of one directory.)
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Error> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let t = entry.file_type()?;
        if t.is_dir() {
            walk(&path, out)?;
        } else if path.is_file() {
            out.push(path);
        }
    }
    Ok(())
}

/// The entries of an archive, in order: ComicInfo first (readers look for it by name;
/// first keeps it cheap to reach), pages in natural order, then other files.
struct Layout {
    comic: Option<Source>,
    pages: Vec<Source>,
    others: Vec<Source>,
    junk: usize,
}

fn layout(sources: Vec<Source>) -> Result<Layout, Error> {
    let mut l = Layout {
        comic: None,
        pages: Vec::new(),
        others: Vec::new(),
        junk: 0,
    };
    for s in sources {
        match archive::kind(&s.name) {
            Kind::Page => l.pages.push(s),
            Kind::ComicInfo if l.comic.is_none() => l.comic = Some(s),
            Kind::ComicInfo => {
                return Err(Error::new(
                    ErrorKind::BadRecord,
                    format!("two ComicInfo.xml among the inputs ({})", s.path.display()),
                ))
            }
            Kind::Junk => l.junk += 1,
            Kind::Directory => {}
            Kind::Other => l.others.push(s),
        }
    }
    l.pages.sort_by(|a, b| natural::cmp(&a.name, &b.name));
    l.others.sort_by(|a, b| natural::cmp(&a.name, &b.name));
    Ok(l)
}

/// A page's header, for ComicInfo.
fn page_info(s: &Source) -> PageInfo {
    let head = File::open(&s.path).and_then(archive::read_head);
    let dims = head.ok().as_deref().and_then(archive::image_head);
    if dims.is_none() {
        log::warn!("{}: image header not readable", s.path.display());
    }
    PageInfo {
        width: dims.map(|d| d.width),
        height: dims.map(|d| d.height),
        bytes: s.len,
    }
}

/// Write `sources` as the archive `dest`, verified, renamed into place. `comic_info`:
/// the ComicInfo.xml page records named (used when no ComicInfo is among `sources`).
pub fn write(
    sources: Vec<Source>,
    comic_info: Option<&Path>,
    mut atomic: AtomicFile,
    o: &PackOpts,
) -> Result<Packed, Error> {
    let l = layout(sources)?;
    if l.pages.is_empty() {
        return Err(Error::new(
            ErrorKind::NotFound,
            "no page images among the inputs",
        ));
    }
    let width = natural::pad_width(l.pages.len());
    let page_names: Vec<String> = if o.keep_names {
        l.pages.iter().map(|s| s.name.clone()).collect()
    } else {
        l.pages
            .iter()
            .enumerate()
            .map(|(i, s)| natural::padded_name(i, width, natural::extension(&s.name)))
            .collect()
    };
    let mut names: Vec<&str> = page_names.iter().map(String::as_str).collect();
    names.extend(l.others.iter().map(|s| s.name.as_str()));
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = names.iter().find(|n| !seen.insert(n.to_lowercase())) {
        return Err(Error::new(
            ErrorKind::BadRecord,
            format!("two inputs would both be named {dup:?} in the archive"),
        ));
    }
    let comic: Option<(Vec<u8>, DateTime, &'static str)> = match &l.comic {
        Some(s) => Some((std::fs::read(&s.path)?, s.modified, "kept")),
        None if o.no_comic_info => None,
        // Pages may have been dropped, added or resized on the way: the counts and
        // sizes are redone, every other byte kept.
        None if comic_info.is_some_and(Path::is_file) => {
            let path = comic_info.unwrap_or(Path::new(""));
            let xml = String::from_utf8(std::fs::read(path)?).map_err(|_| {
                Error::corrupt(format!("{}: ComicInfo.xml is not UTF-8", path.display()))
            })?;
            let infos: Vec<PageInfo> = l.pages.iter().map(page_info).collect();
            let modified = std::fs::metadata(path)
                .and_then(|m| m.modified())
                .map_or_else(|_| DateTime::default(), archive::zip_time);
            Some(match comicinfo::update(&xml, &infos) {
                Some(x) => (x.into_bytes(), modified, "updated"),
                None => (xml.into_bytes(), modified, "kept"),
            })
        }
        None => {
            let infos: Vec<PageInfo> = l.pages.iter().map(page_info).collect();
            Some((
                comicinfo::generate(&infos).into_bytes(),
                l.pages[0].modified,
                "generated",
            ))
        }
    };

    let mut entries = 0usize;
    {
        let file = atomic.file();
        let mut zip = zip::ZipWriter::new(BufWriter::with_capacity(archive::COPY_BUF, file));
        let zerr = archive::zip_err;
        if let Some((bytes, modified, _)) = &comic {
            let opts = archive::options("ComicInfo.xml", bytes.len() as u64, *modified);
            zip.start_file("ComicInfo.xml", opts).map_err(zerr)?;
            zip.write_all(bytes)?;
            entries += 1;
        }
        let all = l
            .pages
            .iter()
            .zip(page_names.iter())
            .chain(l.others.iter().map(|s| (s, &s.name)));
        for (s, name) in all {
            let opts = archive::options(name, s.len, s.modified);
            zip.start_file(name.as_str(), opts).map_err(zerr)?;
            let mut r = BufReader::with_capacity(archive::COPY_BUF, File::open(&s.path)?);
            let n = io::copy(&mut r, &mut zip)?;
            if n != s.len {
                return Err(Error::new(
                    ErrorKind::Io,
                    format!("{} changed size while being packed", s.path.display()),
                ));
            }
            entries += 1;
        }
        let mut w = zip.finish().map_err(zerr)?;
        w.flush()?;
    }
    let bytes = archive::commit_verified(atomic, entries)?;
    Ok(Packed {
        pages: l.pages.len(),
        entries,
        comic_info: comic.map_or("none", |c| c.2),
        junk: l.junk,
        bytes,
    })
}
