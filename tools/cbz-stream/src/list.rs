//! `list`: one record per entry of each archive (name, sizes, method, CRC, kind, and for
//! images the format and dimensions read from the first bytes of the entry).

use crate::archive::{self, Kind};
use crate::{ListOpts, NAME};
use anyhow::Result;
use membudget::cli::{LogArgs, Status};
use membudget::{Error, Record};
use std::path::Path;

/// `--help` text.
pub const LONG_ABOUT: &str = "Writes one record per entry of each archive, in the \
archive's order: the input's record with a `cbz-stream` section holding the entry's \
index, name, size, compressed size, method, CRC-32, kind (page, comic_info, junk, \
directory, other) and, for images, the format and width and height read from the \
entry's header (only its first 256 KiB are inflated). The central directory is checked \
as the header probe does (entries claiming more data than the file, overlapping entries: \
an error record). Names that would escape an extraction directory get a `warning`.";

/// Run `list`.
pub fn run(o: &ListOpts, log: &LogArgs) -> Result<Status> {
    // Archives side by side; no model of the least need (one entry's first 256 KiB).
    o.processing.for_each_record(
        NAME,
        &o.input,
        log,
        |_| None,
        |record, job, _room| {
            let path = record.path_str().to_string();
            let mut a = archive::open(Path::new(&path))?;
            for i in 0..a.len() {
                let mut r = record.clone();
                describe(&mut a, i, !o.no_images, &mut r)?;
                job.emit(r)?;
            }
            if a.is_empty() {
                // An empty archive still gets its record.
                record.set_in(NAME, "entries", 0);
            }
            Ok(())
        },
    )
}

/// Kind name for records.
pub fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Page => "page",
        Kind::ComicInfo => "comic_info",
        Kind::Junk => "junk",
        Kind::Directory => "directory",
        Kind::Other => "other",
    }
}

fn describe(a: &mut archive::Archive, i: usize, images: bool, r: &mut Record) -> Result<(), Error> {
    let (name, kind) = {
        let e = a.by_index_data(i).map_err(archive::zip_err)?;
        let name = match e.name() {
            Ok(n) => n.into_owned(),
            Err(_) => String::from_utf8_lossy(e.name_raw()).into_owned(),
        };
        let kind = archive::kind(&name);
        r.set_in(NAME, "op", "list");
        r.set_in(NAME, "index", i);
        r.set_in(NAME, "entry", name.clone());
        r.set_in(NAME, "size", e.size());
        r.set_in(NAME, "compressed_size", e.compressed_size());
        r.set_in(NAME, "method", e.compression().to_string().to_lowercase());
        r.set_in(NAME, "crc32", format!("{:08x}", e.crc32()));
        r.set_in(NAME, "kind", kind_name(kind));
        if e.is_symlink() {
            r.set_in(NAME, "warning", "symbolic link entry");
        } else if let Err(why) = crate::unpack::check_name(&name) {
            r.set_in(NAME, "warning", why.message);
        }
        (name, kind)
    };
    if images && kind == Kind::Page {
        let e = a.by_index(i).map_err(archive::zip_err)?;
        match archive::read_head(e) {
            Ok(head) => {
                if let Some(h) = archive::image_head(&head) {
                    r.set_in(NAME, "format", h.format.as_str());
                    r.set_in(NAME, "width", h.width);
                    r.set_in(NAME, "height", h.height);
                } else {
                    log::info!("{name}: image header not recognised");
                }
            }
            Err(err) => r.set_in(NAME, "warning", archive::io_err(err).message),
        }
    }
    Ok(())
}
