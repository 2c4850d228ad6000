//! `cover`: a thumbnail of an archive's first page (or `--page N`), through the
//! workspace's one bounded-memory scaler, `raster::thumbnail` (which tile-enhance's
//! thumbnailer is to reuse). The page entry is streamed to a temporary file first (one
//! entry in flight, whatever its size); the scaler then reads it row by row (PNG) or
//! by scanlines decoded at a reduced scale (JPEG).

use crate::archive::{self, Kind};
use crate::{natural, CoverOpts, NAME};
use anyhow::Result;
use membudget::cli::{AtomicFile, LogArgs, Status};
use membudget::probe::Format;
use membudget::{Error, ErrorKind};
use raster::thumbnail::{self, PngRows, Resample};
use std::io::{BufReader, BufWriter, Seek, Write};

/// `--help` text.
pub const LONG_ABOUT: &str = "Writes a PNG thumbnail of each archive's first page (in \
natural order; --page N for another) whose longest side is --size pixels (never \
enlarged), as `<name>.cover.png` beside the archive or mirrored under `-o DIR`. The page \
is scaled by area averaging in bounded memory: a PNG is read row by row, a JPEG decoded \
by scanlines at the largest DCT reduction (1/2, 1/4, 1/8) that keeps it at least the \
thumbnail's size. An ICC profile is passed through untouched.";

/// Run `cover`.
pub fn run(o: &CoverOpts, log: &LogArgs) -> Result<Status> {
    // Archives side by side; no model of the least need (one page's thumbnail).
    o.processing.for_each_record(
        NAME,
        &o.input,
        log,
        |_| None,
        |record, job, _room| {
            let input = record.path();
            let name = membudget::cli::stem_name(&input, "out", ".cover.png");
            let dest = crate::output_for(&o.output, &input, &name, &["png"])?;
            record.set_in(NAME, "op", "cover");
            if !crate::begin(record, job, &o.output, &dest)? {
                return Ok(());
            }
            let mut a = archive::open(&input)?;
            let mut pages: Vec<(String, usize)> = (0..a.len())
                .filter_map(|i| {
                    let e = a.by_index_data(i).ok()?;
                    let n = e.name().ok()?.into_owned();
                    (archive::kind(&n) == Kind::Page).then_some((n, i))
                })
                .collect();
            pages.sort_by(|x, y| natural::cmp(&x.0, &y.0));
            let (entry, index) = pages.get(o.page as usize - 1).cloned().ok_or_else(|| {
                Error::new(
                    ErrorKind::BadRecord,
                    format!("--page {}: the archive has {} pages", o.page, pages.len()),
                )
            })?;
            let mut tmp = tempfile::tempfile()?;
            {
                let mut e = a.by_index(index).map_err(archive::zip_err)?;
                std::io::copy(&mut e, &mut tmp).map_err(archive::io_err)?;
            }
            tmp.rewind()?;
            let head = archive::read_head(&mut tmp)?;
            tmp.rewind()?;
            let info = archive::image_head(&head)
                .ok_or_else(|| Error::unsupported(format!("{entry}: not a JPEG or PNG page")))?;
            let (tw, th) = thumbnail::fit(info.width as u32, info.height as u32, o.size);
            let (thumb, icc) = match info.format {
                Format::Jpeg => {
                    let probe =
                        membudget::probe::raster::probe_jpeg_reader(BufReader::new(&mut tmp))?;
                    tmp.rewind()?;
                    let d = raster::jpeg::shrink_for(info.width as u32, info.height as u32, tw, th);
                    let mut src = thumbnail::open_jpeg(tmp, &probe, d, false, (tw, th))?;
                    let t = thumbnail::resize(src.source.as_mut(), tw, th, Resample::Box)?;
                    (t, src.icc)
                }
                Format::Png => {
                    let mut src = PngRows::new(BufReader::new(tmp))?;
                    let t = thumbnail::resize(&mut src, tw, th, Resample::Box)?;
                    (t, src.icc)
                }
                _ => {
                    return Err(Error::unsupported(format!(
                        "{entry}: not a JPEG or PNG page"
                    )))
                }
            };
            let mut out = AtomicFile::create(&dest)?;
            {
                let mut w = BufWriter::new(out.file());
                thumbnail::encode_png(&thumb, icc.as_deref(), &mut w)?;
                w.flush()?;
            }
            out.commit()?;
            record.set_in(NAME, "status", "ok");
            record.set_in(NAME, "entry", entry);
            record.set_in(NAME, "width", thumb.width);
            record.set_in(NAME, "height", thumb.height);
            Ok(())
        },
    )
}
