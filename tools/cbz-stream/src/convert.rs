//! `convert`: RAR (CBR) and 7z (CB7) comic archives to CBZ, one entry in flight.
//!
//! RAR is read through the `unrar` crate (RARLAB's own decoder: no pure-Rust crate reads
//! RAR 5), 7z through `sevenz-rust2`. Each entry is decompressed into one scratch file
//! beside the output (never into memory: a page can be any size), checked (name,
//! symbolic link, size against the free disk space), then copied into the new archive:
//! pages stored as they are, text and XML deflated, exactly as `pack` writes them. The
//! archive is verified (every CRC, the entry count) before it is renamed into place.

use crate::archive::{self, Kind};
use crate::comicinfo::{self, PageInfo};
use crate::unpack::check_name;
use crate::{ConvertOpts, NAME};
use anyhow::Result;
use membudget::cli::{LogArgs, Status};
use membudget::driver::Job;
use membudget::outputs;
use membudget::{Error, Record};
use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;
use zip::ZipWriter;

/// `--help` text.
pub const LONG_ABOUT: &str = "Converts RAR (.cbr) and 7z (.cb7) comic archives to CBZ \
(`a.cbr` -> `a.cbz` beside it, mirrored under `-o DIR`, or the file `-o FILE.cbz`), \
recognised by their content, not their name. Entries keep their names and order; pages are \
stored as they are (no recompression), text and XML deflated; a ComicInfo.xml is kept, or \
generated with the pages' dimensions when there are pages. One entry is decompressed at a time into a scratch \
file beside the output, so memory does not grow with the pages' size; the decoders' own \
window (the archive's dictionary size, 4 MiB to 64 MiB for usual archives) comes on top. \
Encrypted and multi-volume archives, symbolic links, unsafe names (`..`, absolute paths) \
and duplicate names get an error record; the new archive is verified before it is renamed \
into place, and the source is never modified.";

/// The archive formats `convert` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Rar,
    SevenZ,
}

/// What the first bytes say the file is.
fn sniff(path: &Path) -> Result<Source, Error> {
    let mut head = [0u8; 8];
    let n = File::open(path)?.read(&mut head)?;
    let head = &head[..n];
    if head.starts_with(b"Rar!\x1a\x07") {
        Ok(Source::Rar)
    } else if head.starts_with(b"7z\xbc\xaf\x27\x1c") {
        Ok(Source::SevenZ)
    } else {
        Err(Error::unsupported(
            "not a RAR or 7z archive (convert reads .cbr and .cb7; a .cbz needs no conversion)",
        ))
    }
}

/// Run `convert`.
pub fn run(o: &ConvertOpts, log: &LogArgs) -> Result<Status> {
    // Archives side by side; no model of the least need (one entry in flight).
    o.processing.for_each_record(
        NAME,
        &o.input,
        log,
        |_| None,
        |record, job, _room| convert(o, record, job),
    )
}

/// The archive being written and what is known of its entries.
struct Writer<'a> {
    zip: ZipWriter<BufWriter<&'a mut File>>,
    names: HashSet<String>,
    pages: Vec<PageInfo>,
    entries: usize,
    has_comic_info: bool,
    modified: zip::DateTime,
    room: u64,
}

impl Writer<'_> {
    /// Add the entry `name` whose data is in the scratch file `data`.
    fn add(&mut self, name: &str, data: &Path) -> Result<(), Error> {
        check_name(name)?;
        if !self.names.insert(name.to_lowercase()) {
            return Err(Error::hostile(format!(
                "entry {name:?} appears twice (names compared case-insensitively)"
            )));
        }
        // A link entry may have been created as a link: never read through it.
        let meta = std::fs::symlink_metadata(data)?;
        if !meta.is_file() {
            return Err(Error::hostile(format!(
                "entry {name:?} is a symbolic link or special file (never copied)"
            )));
        }
        let len = meta.len();
        self.room = self.room.checked_sub(len).ok_or_else(|| {
            Error::hostile(format!(
                "entries expand to more than the free disk space beside the output ({} bytes left at {name:?})",
                self.room
            ))
        })?;
        match archive::kind(name) {
            Kind::Page => {
                let head = File::open(data).and_then(archive::read_head)?;
                let dims = archive::image_head(&head);
                self.pages.push(PageInfo {
                    width: dims.map(|d| d.width),
                    height: dims.map(|d| d.height),
                    bytes: len,
                });
            }
            Kind::ComicInfo => self.has_comic_info = true,
            _ => {}
        }
        self.zip
            .start_file(name, archive::options(name, len, self.modified))
            .map_err(archive::zip_err)?;
        let mut src = BufReader::with_capacity(archive::COPY_BUF, File::open(data)?);
        std::io::copy(&mut src, &mut self.zip)?;
        std::fs::remove_file(data)?;
        self.entries += 1;
        Ok(())
    }
}

fn convert(o: &ConvertOpts, record: &mut Record, job: &mut Job) -> Result<(), Error> {
    let input = record.path();
    let dest = crate::cbz_for(&o.output, &input)?;
    record.set_in(NAME, "op", "convert");
    let source = sniff(&input)?;
    record.set_in(
        NAME,
        "from",
        match source {
            Source::Rar => "rar",
            Source::SevenZ => "7z",
        },
    );
    if !crate::begin(record, job, &o.output, &dest)? {
        return Ok(());
    }
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let Some(mut atomic) = crate::claim(record, &o.output, &dest)? else {
        return Ok(());
    };
    let scratch = outputs::scratch_dir(&parent, "convert")?;
    let slot = scratch.path().join("entry");
    let modified = std::fs::metadata(&input)
        .and_then(|m| m.modified())
        .map_or_else(|_| zip::DateTime::default(), archive::zip_time);
    // The output and the scratch entry share the file system: keep 5% of it free.
    let room = outputs::free_space(&parent).map_or(u64::MAX, |f| f / 20 * 19);
    let entries;
    {
        let mut w = Writer {
            zip: ZipWriter::new(BufWriter::with_capacity(archive::COPY_BUF, atomic.file())),
            names: HashSet::new(),
            pages: Vec::new(),
            entries: 0,
            has_comic_info: false,
            modified,
            room,
        };
        match source {
            Source::Rar => from_rar(&input, &slot, &mut w)?,
            Source::SevenZ => from_7z(&input, &slot, &mut w)?,
        }
        let generate = !w.has_comic_info && !w.pages.is_empty();
        if generate {
            let xml = comicinfo::generate(&w.pages);
            w.zip
                .start_file(
                    "ComicInfo.xml",
                    archive::options("ComicInfo.xml", xml.len() as u64, modified),
                )
                .map_err(archive::zip_err)?;
            w.zip.write_all(xml.as_bytes())?;
            w.entries += 1;
        }
        entries = w.entries;
        record.set_in(NAME, "pages", w.pages.len());
        record.set_in(NAME, "comic_info_generated", generate);
        let mut out = w.zip.finish().map_err(archive::zip_err)?;
        out.flush()?;
    }
    let bytes = archive::commit_verified(atomic, entries)?;
    record.set_in(NAME, "status", "ok");
    record.set_in(NAME, "entries", entries);
    record.set_in(NAME, "bytes", bytes);
    Ok(())
}

/// An unrar error as a record's error.
fn rar_err(e: unrar::error::UnrarError) -> Error {
    use unrar::error::Code;
    match e.code {
        Code::MissingPassword | Code::BadPassword => {
            Error::unsupported("RAR: the archive is encrypted (a password is needed)")
        }
        Code::NoMemory => Error::unsupported("RAR: not enough memory for the archive's dictionary"),
        Code::EOpen | Code::ERead | Code::ECreate | Code::EWrite | Code::EClose => {
            Error::new(membudget::ErrorKind::Io, format!("RAR: {e}"))
        }
        _ => Error::corrupt(format!("RAR: {e}")),
    }
}

fn from_rar(input: &Path, slot: &Path, w: &mut Writer) -> Result<(), Error> {
    let open = unrar::Archive::new(input)
        .open_for_processing()
        .map_err(rar_err)?;
    if open.volume_info() != unrar::VolumeInfo::None {
        return Err(Error::unsupported(
            "RAR: a multi-volume archive (join the volumes with unrar first)",
        ));
    }
    let mut cursor = open;
    while let Some(entry) = cursor.read_header().map_err(rar_err)? {
        let h = entry.entry();
        let name = h.filename.to_string_lossy().replace('\\', "/");
        if h.is_split() {
            return Err(Error::unsupported(format!(
                "RAR: entry {name:?} continues in another volume"
            )));
        }
        if h.is_encrypted() {
            return Err(Error::unsupported(format!(
                "RAR: entry {name:?} is encrypted (a password is needed)"
            )));
        }
        if h.is_directory() {
            cursor = entry.skip().map_err(rar_err)?;
            continue;
        }
        check_name(&name)?;
        if h.unpacked_size > w.room {
            return Err(Error::hostile(format!(
                "RAR: entry {name:?} expands to {} bytes, more than the free disk space",
                h.unpacked_size
            )));
        }
        cursor = entry.extract_to(slot).map_err(rar_err)?;
        w.add(&name, slot)?;
    }
    Ok(())
}

/// A sevenz-rust2 error as a record's error.
fn sevenz_err(e: sevenz_rust2::Error) -> Error {
    use sevenz_rust2::Error as E;
    match e {
        E::PasswordRequired | E::MaybeBadPassword(_) => {
            Error::unsupported("7z: the archive is encrypted (a password is needed)")
        }
        E::Io(io, _) => Error::from(io),
        E::UnsupportedCompressionMethod(m) => {
            Error::unsupported(format!("7z: unsupported compression method {m}"))
        }
        other => Error::corrupt(format!("7z: {other}")),
    }
}

fn from_7z(input: &Path, slot: &Path, w: &mut Writer) -> Result<(), Error> {
    let name = input.to_string_lossy();
    if name.ends_with(".001") || name.contains(".7z.0") {
        return Err(Error::unsupported(
            "7z: a multi-volume archive (join the volumes with cat first)",
        ));
    }
    let mut reader = sevenz_rust2::ArchiveReader::new(
        BufReader::new(File::open(input)?),
        sevenz_rust2::Password::empty(),
    )
    .map_err(sevenz_err)?;
    let mut failed: Option<Error> = None;
    let mut step = |entry: &sevenz_rust2::ArchiveEntry, data: &mut dyn Read| -> Result<(), Error> {
        if entry.is_directory() || entry.is_anti_item() {
            return Ok(());
        }
        let name = entry.name().replace('\\', "/");
        check_name(&name)?;
        if entry.size() > w.room {
            return Err(Error::hostile(format!(
                "7z: entry {name:?} expands to {} bytes, more than the free disk space",
                entry.size()
            )));
        }
        // A Unix symbolic link is stored as a file whose attributes carry S_IFLNK in
        // their high 16 bits (p7zip's convention).
        let unix_mode = entry.windows_attributes() >> 16;
        if entry.windows_attributes() & 0x8000 != 0 && unix_mode & 0o170000 == 0o120000 {
            return Err(Error::hostile(format!(
                "7z: entry {name:?} is a symbolic link (never copied)"
            )));
        }
        let mut out = BufWriter::with_capacity(archive::COPY_BUF, File::create(slot)?);
        // One byte past the declared size: more is corruption, and reaching the end is
        // what makes the decoder check the entry's CRC.
        let n = std::io::copy(&mut data.take(entry.size() + 1), &mut out)?;
        out.flush()?;
        drop(out);
        if n != entry.size() {
            return Err(Error::corrupt(format!(
                "7z: entry {name:?} holds {n} bytes, {} declared",
                entry.size()
            )));
        }
        w.add(&name, slot)
    };
    let r = reader.for_each_entries(|entry, data| match step(entry, data) {
        Ok(()) => Ok(true),
        Err(e) => {
            failed = Some(e);
            Ok(false)
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    r.map_err(sevenz_err)
}
