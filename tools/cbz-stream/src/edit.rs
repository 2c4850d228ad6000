//! `edit`: remove, move and insert pages, drop junk, rename to natural order, without
//! ever risking the original. Unchanged entries are copied raw (their compressed bytes,
//! no decompression and recompression) into a new archive written beside the old one,
//! which is verified (entry count, every CRC) and only then renamed over it: after any
//! failure or a SIGKILL at any moment the original is untouched. The temporary file is
//! locked (`flock`) while it is written, so the next run on the same archive knows a
//! leftover one from a killed run and removes it.

use crate::archive::{self, Kind};
use crate::comicinfo::{self, PageInfo};
use crate::{natural, EditOpts, NAME};
use anyhow::Result;
use membudget::cli::{AtomicFile, LogArgs, Status};
use membudget::{driver, Error, ErrorKind, Record};
use std::io::{BufWriter, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

/// `--help` text.
pub const LONG_ABOUT: &str = "Edits each archive in place: --drop-junk, then --remove, \
then --move, then --insert-blank, each counting pages (1-based, in natural order) as the \
previous step left them. --move and --insert-blank imply --rename (zero-padded names in \
the new order), since readers order pages by name. Unchanged entries are copied raw (no \
decompression or recompression); a ComicInfo.xml is kept, its PageCount and Pages \
brought up to date when pages changed. The new archive is written beside the original, \
verified (entry count and every CRC) and renamed over it: after any failure or a \
SIGKILL the original is intact, and the next run removes the killed run's temporary \
file.";

/// `FROM:TO` of `--move`.
pub fn parse_move(s: &str) -> Result<(usize, usize), String> {
    let (a, b) = s.split_once(':').ok_or("FROM:TO, e.g. 10:1")?;
    let p = |x: &str| {
        x.trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or(format!("{x:?} is not a page number (1, 2...)"))
    };
    Ok((p(a)?, p(b)?))
}

/// A `*`/`?` glob, case-insensitive, against a whole name or its last component.
fn glob(pattern: &str, name: &str) -> bool {
    fn m(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('*', rest)) => (0..=n.len()).any(|i| m(rest, &n[i..])),
            Some(('?', rest)) => !n.is_empty() && m(rest, &n[1..]),
            Some((c, rest)) => n.first() == Some(c) && m(rest, &n[1..]),
        }
    }
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let whole: Vec<char> = name.to_lowercase().chars().collect();
    let base: Vec<char> = name
        .rsplit('/')
        .next()
        .unwrap_or(name)
        .to_lowercase()
        .chars()
        .collect();
    m(&p, &whole) || m(&p, &base)
}

/// Where an output entry's bytes come from.
#[derive(Debug, Clone)]
enum Src {
    /// Entry `i` of the original, copied raw.
    Copy(usize),
    /// A white page of this size.
    Blank(u32, u32),
}

#[derive(Debug, Clone)]
struct Page {
    src: Src,
    /// Its current name (the original's, until renamed).
    name: String,
}

/// Pages selected by `--remove` specs (0-based, into `pages`).
fn selected(specs: &[String], pages: &[Page]) -> Result<Vec<bool>, Error> {
    let n = pages.len();
    let mut out = vec![false; n];
    for part in specs.iter().flat_map(|s| s.split(',')).map(str::trim) {
        if part.is_empty() {
            continue;
        }
        let num = |s: &str| s.trim().parse::<usize>().ok();
        let range = match part.split_once('-') {
            Some((a, b)) => num(a).zip(num(b)),
            None => num(part).map(|k| (k, k)),
        };
        match range {
            Some((a, b)) => {
                if a == 0 || b < a || b > n {
                    return Err(Error::new(
                        ErrorKind::BadRecord,
                        format!("--remove {part}: the archive has pages 1 to {n}"),
                    ));
                }
                out[a - 1..b].iter_mut().for_each(|s| *s = true);
            }
            None => {
                for (k, p) in pages.iter().enumerate() {
                    if glob(part, &p.name) {
                        out[k] = true;
                    }
                }
            }
        }
    }
    Ok(out)
}

/// A white grayscale PNG of `w` x `h`, encoded row by row (memory: one row).
fn blank_png(w: u32, h: u32) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    let internal = |e: png::EncodingError| Error::new(ErrorKind::Internal, format!("PNG: {e}"));
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        let mut wr = enc.write_header().map_err(internal)?;
        let mut s = wr.stream_writer().map_err(internal)?;
        let row = vec![255u8; w as usize];
        for _ in 0..h {
            s.write_all(&row)?;
        }
        s.finish().map_err(internal)?;
    }
    Ok(out)
}

/// The dimensions of entry `i` from its header.
fn entry_dims(a: &mut archive::Archive, i: usize) -> Option<(u64, u64)> {
    let e = a.by_index(i).ok()?;
    let head = archive::read_head(e).ok()?;
    archive::image_head(&head).map(|h| (h.width, h.height))
}

/// Remove temporary files of killed runs on `path` (`.<name>.*.part` beside it that no
/// live process holds locked).
pub fn sweep_stale(path: &Path) {
    let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return;
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let prefix = format!(".{name}.");
    for e in rd.flatten() {
        let f = e.file_name().to_string_lossy().into_owned();
        if !(f.starts_with(&prefix) && f.ends_with(".part")) {
            continue;
        }
        let Ok(file) = std::fs::File::open(e.path()) else {
            continue;
        };
        // SAFETY: flock on an fd we own; non-blocking.
        let free = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        if free {
            log::info!("removing {} left by an interrupted run", e.path().display());
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Run `edit`.
pub fn run(o: &EditOpts, log: &LogArgs) -> Result<Status> {
    if o.remove.is_empty()
        && o.moves.is_empty()
        && o.insert_blank.is_empty()
        && !o.drop_junk
        && !o.rename
    {
        anyhow::bail!(
            "nothing to do: give --remove, --move, --insert-blank, --drop-junk or --rename"
        );
    }
    if o.insert_blank.contains(&0) {
        anyhow::bail!("--insert-blank takes page numbers from 1");
    }
    driver::for_each_record(NAME, &o.input, log, |record, _job| edit_one(o, record))
}

fn edit_one(o: &EditOpts, record: &mut Record) -> Result<(), Error> {
    let path = record.path();
    record.set_in(NAME, "op", "edit");
    sweep_stale(&path);
    let mut a = archive::open(&path)?;
    let mut pages = Vec::new();
    let mut comic = None;
    let mut others = Vec::new();
    let mut junk = 0usize;
    for i in 0..a.len() {
        let e = a.by_index_data(i).map_err(archive::zip_err)?;
        let name = e
            .name()
            .map(|n| n.into_owned())
            .unwrap_or_else(|_| String::from_utf8_lossy(e.name_raw()).into_owned());
        match archive::kind(&name) {
            Kind::Page => pages.push(Page {
                src: Src::Copy(i),
                name,
            }),
            Kind::ComicInfo if comic.is_none() => comic = Some(i),
            Kind::Junk if o.drop_junk => junk += 1,
            _ => others.push(i),
        }
    }
    pages.sort_by(|x, y| natural::cmp(&x.name, &y.name));
    let before = pages.len();

    let gone = selected(&o.remove, &pages)?;
    let mut it = gone.iter();
    pages.retain(|_| !*it.next().unwrap_or(&false));
    let removed = before - pages.len();
    for &(from, to) in &o.moves {
        let n = pages.len();
        if from > n || to > n {
            return Err(Error::new(
                ErrorKind::BadRecord,
                format!("--move {from}:{to}: the archive has pages 1 to {n}"),
            ));
        }
        let p = pages.remove(from - 1);
        pages.insert(to - 1, p);
    }
    for &at in &o.insert_blank {
        let n = pages.len();
        if at > n + 1 {
            return Err(Error::new(
                ErrorKind::BadRecord,
                format!(
                    "--insert-blank {at}: the archive has pages 1 to {n} (at most {})",
                    n + 1
                ),
            ));
        }
        // The size of the page it goes before, or of the one before it at the end.
        let neighbour = pages.get(at - 1).or_else(|| pages.get(at.wrapping_sub(2)));
        let (w, h) = match neighbour.map(|p| p.src.clone()) {
            Some(Src::Copy(i)) => entry_dims(&mut a, i).unwrap_or((1, 1)),
            Some(Src::Blank(w, h)) => (u64::from(w), u64::from(h)),
            None => (1, 1),
        };
        let clamp = |v: u64| v.clamp(1, 65_535) as u32;
        pages.insert(
            at - 1,
            Page {
                src: Src::Blank(clamp(w), clamp(h)),
                name: "blank.png".into(),
            },
        );
    }
    let rename = o.rename || !o.moves.is_empty() || !o.insert_blank.is_empty();
    let width = natural::pad_width(pages.len());
    let mut renamed = 0usize;
    if rename {
        for (k, p) in pages.iter_mut().enumerate() {
            let new = natural::padded_name(k, width, natural::extension(&p.name));
            if new != p.name {
                renamed += 1;
                p.name = new;
            }
        }
    }
    let order_changed = !o.moves.is_empty() || !o.insert_blank.is_empty() || removed > 0;
    record.set_in(NAME, "pages_before", before);
    record.set_in(NAME, "pages", pages.len());
    record.set_in(NAME, "removed", removed);
    record.set_in(NAME, "inserted", o.insert_blank.len());
    record.set_in(NAME, "moved", o.moves.len());
    record.set_in(NAME, "junk_dropped", junk);
    record.set_in(NAME, "renamed", renamed);
    if !order_changed && junk == 0 && renamed == 0 {
        record.set_in(NAME, "status", "unchanged");
        return Ok(());
    }
    if o.dry_run {
        record.set_in(NAME, "status", "dry_run");
        return Ok(());
    }

    // ComicInfo brought up to date when the pages changed.
    let comic_xml = match comic {
        Some(i) if order_changed => {
            let mut xml = String::new();
            {
                use std::io::Read;
                let e = a.by_index(i).map_err(archive::zip_err)?;
                if e.size() > 16 << 20 {
                    return Err(Error::hostile("ComicInfo.xml larger than 16 MiB"));
                }
                e.take(16 << 20)
                    .read_to_string(&mut xml)
                    .map_err(archive::io_err)?;
            }
            let infos: Vec<PageInfo> = pages
                .iter()
                .map(|p| match p.src {
                    Src::Copy(i) => {
                        let d = entry_dims(&mut a, i);
                        PageInfo {
                            width: d.map(|d| d.0),
                            height: d.map(|d| d.1),
                            bytes: a.by_index_data(i).map_or(0, |e| e.size()),
                        }
                    }
                    Src::Blank(w, h) => PageInfo {
                        width: Some(u64::from(w)),
                        height: Some(u64::from(h)),
                        bytes: 0,
                    },
                })
                .collect();
            comicinfo::update(&xml, &infos)
        }
        _ => None,
    };

    // The new archive is written beside the old one before replacing it: about the
    // old one's size (entries are copied raw) must be free first.
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let need = std::fs::metadata(&path)?.len();
    membudget::outputs::ensure_free_space(dir, need, "the edited archive")?;
    let mut atomic = match AtomicFile::claim(&path)? {
        Ok(a) => a,
        Err(busy) => {
            // Another live run is editing it: its result stands.
            record.set_in(NAME, "status", "skipped");
            record.set_in(NAME, "reason", busy);
            return Ok(());
        }
    };
    // Held until the file is closed: tells a later sweep this file is not a leftover.
    // SAFETY: flock on the temporary file's open fd.
    unsafe { libc::flock(atomic.file().as_raw_fd(), libc::LOCK_EX) };
    let mut entries = 0usize;
    {
        let zerr = archive::zip_err;
        let mut zip =
            zip::ZipWriter::new(BufWriter::with_capacity(archive::COPY_BUF, atomic.file()));
        if let Some(i) = comic {
            match &comic_xml {
                Some(xml) => {
                    let modified = a
                        .by_index_data(i)
                        .ok()
                        .and_then(|e| e.last_modified())
                        .unwrap_or_default();
                    zip.start_file(
                        "ComicInfo.xml",
                        archive::options("ComicInfo.xml", xml.len() as u64, modified),
                    )
                    .map_err(zerr)?;
                    zip.write_all(xml.as_bytes())?;
                }
                None => zip
                    .raw_copy_file(a.by_index_raw(i).map_err(zerr)?)
                    .map_err(zerr)?,
            }
            entries += 1;
        }
        for p in &pages {
            match p.src {
                Src::Copy(i) => {
                    let e = a.by_index_raw(i).map_err(zerr)?;
                    let same = e.name().map(|n| n == p.name.as_str()).unwrap_or(false);
                    if same {
                        zip.raw_copy_file(e).map_err(zerr)?;
                    } else {
                        zip.raw_copy_file_rename(e, &p.name).map_err(zerr)?;
                    }
                }
                Src::Blank(w, h) => {
                    let png = blank_png(w, h)?;
                    let t = archive::zip_time(std::time::SystemTime::now());
                    zip.start_file(
                        p.name.as_str(),
                        archive::options(&p.name, png.len() as u64, t),
                    )
                    .map_err(zerr)?;
                    zip.write_all(&png)?;
                }
            }
            entries += 1;
        }
        for &i in &others {
            zip.raw_copy_file(a.by_index_raw(i).map_err(zerr)?)
                .map_err(zerr)?;
            entries += 1;
        }
        let mut w = zip.finish().map_err(zerr)?;
        w.flush()?;
    }
    let bytes = archive::commit_verified(atomic, entries)?;
    record.set_in(NAME, "status", "ok");
    record.set_in(NAME, "entries", entries);
    record.set_in(NAME, "bytes", bytes);
    if comic_xml.is_some() {
        record.set_in(NAME, "comic_info", "updated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_and_specs() {
        assert!(glob("*credits*", "zz/Credits Page.jpg"));
        assert!(glob("p?.jpg", "p1.JPG"));
        assert!(!glob("p?.jpg", "p10.jpg"));
        let pages: Vec<Page> = ["1.jpg", "2.jpg", "3.jpg", "credits.jpg"]
            .iter()
            .enumerate()
            .map(|(i, n)| Page {
                src: Src::Copy(i),
                name: n.to_string(),
            })
            .collect();
        assert_eq!(
            selected(&["1,3-3".into(), "cred*".into()], &pages).unwrap(),
            [true, false, true, true]
        );
        assert!(selected(&["5".into()], &pages).is_err());
        assert!(selected(&["2-1".into()], &pages).is_err());
        assert_eq!(parse_move("10:1"), Ok((10, 1)));
        assert!(parse_move("0:1").is_err());
    }
}
