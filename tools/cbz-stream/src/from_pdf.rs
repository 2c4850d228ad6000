//! `from-pdf`: a PDF to a CBZ. A page that is one embedded image painted over the whole
//! page (the header probe's `scan`) is taken out without rendering ([`pdf_image`]): a
//! DCT (JPEG) or JPX (JPEG 2000) stream as its bytes, exactly what `pdfimages -all`
//! writes; a Flate, CCITT fax or JBIG2 image decoded losslessly to PNG. Any other page,
//! and any image `pdf_image` refuses (masks, unusual colour spaces or /Decode arrays,
//! data that does not decode), is rendered by poppler's `pdftoppm` from the CropBox (300
//! DPI by default, JPEG q92 or PNG), in batches of pages sized from the budget with the
//! `pdf-to-cbz` cost model. Image streams are read one at a time.

use crate::archive;
use crate::comicinfo::{self, PageInfo};
use crate::pdf_image::{self, Extracted, Refusal};
use crate::{natural, FromPdfOpts, RenderFormat, NAME};
use anyhow::Result;
use membudget::cli::{LogArgs, Status};
use membudget::cost::cbz::PdfToCbz;
use membudget::cost::{CostModel, Summary};
use membudget::driver::Job;
use membudget::probe::pdf::PdfPage;
use membudget::probe::{self, Detail};
use membudget::{Budget, Error, ErrorKind, Record};
use pdf::file::{NoCache, NoLog, Storage};
use pdf::object::{ParseOptions, PlainRef, Resolve};
use pdf::primitive::Primitive;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// `--help` text.
pub const LONG_ABOUT: &str = "Turns each PDF into a CBZ (`a.pdf` -> `a.cbz` beside it, \
mirrored under `-o DIR`, or the file `-o FILE.cbz`). A page that is one embedded JPEG \
(DCT) or JPEG 2000 (JPX) image covering the page is copied out as it is, byte-identical \
to what `pdfimages -all` writes, with no rendering; one Flate, CCITT fax or JBIG2 image \
in gray, RGB or a palette is decoded losslessly to PNG (the pixels `pdfimages -png` \
writes). Every other page is rendered by \
poppler's `pdftoppm` (a runtime dependency: install poppler-utils) from the CropBox at \
--dpi, as JPEG quality 92 or lossless PNG (--render-format), in batches of pages sized \
from the memory budget. A ComicInfo.xml with each page's size is added. The archive is \
verified before it is renamed into place; the PDF is deleted only with --delete-source, \
after that.";

/// How one page gets into the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    /// The image of this object, copied or decoded to PNG.
    Copy(u64),
    /// Rendered by pdftoppm.
    Render,
}

fn way(p: &PdfPage, render_all: bool) -> Way {
    let Some(img) = p.image.as_ref().filter(|_| p.scan && !render_all) else {
        return Way::Render;
    };
    if img.object == 0 {
        return Way::Render;
    }
    match img.filters.as_slice() {
        [f] if [
            "DCTDecode",
            "DCT",
            "JPXDecode",
            "FlateDecode",
            "Fl",
            "CCITTFaxDecode",
            "CCF",
            "JBIG2Decode",
        ]
        .contains(&f.as_str()) =>
        {
            Way::Copy(img.object)
        }
        _ => Way::Render,
    }
}

/// The PDF's mapping, shared by the `pdf` crate's storage and [`Images`].
struct Map(std::sync::Arc<memmap2::Mmap>);

impl std::ops::Deref for Map {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// Stream bytes of image objects, from the PDF itself.
struct Images {
    storage: Storage<Map, NoCache, NoCache, NoLog>,
    map: std::sync::Arc<memmap2::Mmap>,
    /// Whether streams are stored as they are (not encrypted), so that an image copied
    /// as it is can be borrowed from the map.
    plain: bool,
}

impl Images {
    fn open(path: &Path) -> Result<Images, Error> {
        let file = std::fs::File::open(path)?;
        // SAFETY: read-only map, lives as long as this run on the file; the usual mmap
        // caveat (another process truncating the file) is accepted as in the probe.
        let map = std::sync::Arc::new(unsafe { memmap2::Mmap::map(&file)? });
        let mut storage = Storage::with_cache(
            Map(map.clone()),
            ParseOptions::tolerant(),
            NoCache,
            NoCache,
            NoLog,
        )
        .map_err(|e| Error::corrupt(format!("PDF: {e}")))?;
        let trailer = storage
            .load_storage_and_trailer()
            .map_err(|e| Error::corrupt(format!("PDF cross-reference table: {e}")))?;
        Ok(Images {
            storage,
            map,
            plain: trailer.get("Encrypt").is_none(),
        })
    }

    /// Drop the pages of the PDF this process has read from its mapping. Every image
    /// read faults its stream's pages in, and a file mapping's resident pages count in
    /// the process's RSS until it is unmapped: without this, converting a 2 GB PDF
    /// would end with 2 GB resident. The pages stay in the page cache; a later read
    /// faults them back in from there.
    fn release(&self) {
        let (addr, len) = (self.map.as_ptr(), self.map.len());
        if len > 0 {
            // SAFETY: the range is exactly the live read-only file mapping `self.map`
            // holds; MADV_DONTNEED on a file mapping only drops page-table entries, the
            // contents read afterwards are the file's, unchanged.
            unsafe {
                libc::madvise(addr as *mut libc::c_void, len, libc::MADV_DONTNEED);
            }
        }
    }

    /// Image `object` as a file ([`pdf_image::extract`]), or why it is rendered instead.
    fn extract(&self, object: u64, max_bytes: u64) -> Result<Extracted<'_>, Refusal> {
        let r = self.storage.resolver();
        let id = u32::try_from(object).map_err(|_| "object number out of range")?;
        let p = r
            .resolve(PlainRef {
                id: id.into(),
                gen: 0,
            })
            .map_err(|e| format!("image object {object}: {e}"))?;
        let Primitive::Stream(s) = p else {
            return Err(format!("image object {object} is not a stream"));
        };
        pdf_image::extract(&r, &s, max_bytes, self.plain.then_some(&self.map[..]))
    }
}

/// The image extraction of `from-pdf` without rendering or writing: probe, choose each
/// page's way, copy out the stream of every page that is one image. For the fuzz
/// targets (fuzz/fuzz_targets/pdf_images.rs); returns the bytes copied.
#[doc(hidden)]
pub fn extract_images(path: &Path) -> Result<u64, Error> {
    let probe = probe::pdf::probe(path)?;
    let Detail::Pdf(info) = &probe.detail else {
        return Err(Error::new(
            ErrorKind::Internal,
            "PDF probe without PDF detail",
        ));
    };
    let images = Images::open(path)?;
    let mut bytes = 0u64;
    for p in &info.pages {
        if let Way::Copy(obj) = way(p, false) {
            if let Ok(x) = images.extract(obj, 64 << 20) {
                let b = &x.bytes;
                let _ = archive::image_head(&b[..b.len().min(archive::HEAD_BYTES as usize)]);
                bytes += b.len() as u64;
            }
        }
    }
    Ok(bytes)
}

/// Pages to render per `pdftoppm` run: the largest batch the cost model fits in the
/// budget.
fn batch_size(probe: &probe::Probe, budget: Budget) -> Result<u64, Error> {
    let model = PdfToCbz::default();
    let s = Summary::from_probe(probe);
    let fits = model
        .chunks(&s)
        .into_iter()
        .filter(|&b| model.peak_bytes(&s, b, 1) <= budget.bytes)
        .max();
    fits.ok_or_else(|| {
        Error::new(
            ErrorKind::Budget,
            format!(
                "one page needs about {} bytes, more than the budget of {}",
                model.peak_bytes(&s, 1, 1),
                budget.bytes
            ),
        )
    })
}

/// Render pages `first..=last` into `dir`; the files in page order.
fn render(
    pdf: &Path,
    first: u64,
    last: u64,
    o: &FromPdfOpts,
    dir: &Path,
) -> Result<Vec<PathBuf>, Error> {
    let mut cmd = Command::new("pdftoppm");
    cmd.arg("-r")
        .arg(o.dpi.to_string())
        .arg("-cropbox")
        .arg("-f")
        .arg(first.to_string())
        .arg("-l")
        .arg(last.to_string());
    match o.render_format {
        RenderFormat::Jpeg => cmd.args(["-jpeg", "-jpegopt", "quality=92"]),
        RenderFormat::Png => cmd.arg("-png"),
    };
    cmd.arg(pdf).arg(dir.join("p"));
    let out = cmd.output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::unsupported(format!(
                "pdftoppm (poppler-utils) is needed to render page {first} and was not found"
            ))
        } else {
            Error::from(e)
        }
    })?;
    if !out.status.success() {
        return Err(Error::corrupt(format!(
            "pdftoppm failed on pages {first}-{last}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| {
            let stem = p.file_stem()?.to_str()?;
            let n = stem.rsplit('-').next()?.parse::<u64>().ok()?;
            Some((n, p))
        })
        .collect();
    files.sort();
    let want = (last - first + 1) as usize;
    if files.len() != want || files.first().map(|f| f.0) != Some(first) {
        return Err(Error::new(
            ErrorKind::Internal,
            format!("pdftoppm wrote {} pages, {want} expected", files.len()),
        ));
    }
    Ok(files.into_iter().map(|f| f.1).collect())
}

/// Run `from-pdf`.
pub fn run(o: &FromPdfOpts, log: &LogArgs) -> Result<Status> {
    // PDFs side by side, each batching its pages within its share of the budget; the
    // least need: one page at a time.
    let least = |path: &Path| {
        let s = Summary::from_probe(&probe::pdf::probe(path).ok()?);
        Some(membudget::cost::estimate(&PdfToCbz::default(), &s)?.min_bytes)
    };
    o.processing
        .for_each_record(NAME, &o.input, log, least, |record, job, room| {
            convert(o, record, job, Budget::bytes(room.budget))
        })
}

fn convert(
    o: &FromPdfOpts,
    record: &mut Record,
    job: &mut Job,
    budget: Budget,
) -> Result<(), Error> {
    let input = record.path();
    let dest = crate::cbz_for(&o.output, &input)?;
    record.set_in(NAME, "op", "from-pdf");
    if !crate::begin(record, job, &o.output, &dest)? {
        return Ok(());
    }
    let probe = probe::pdf::probe(&input)?;
    let Detail::Pdf(info) = &probe.detail else {
        return Err(Error::new(
            ErrorKind::Internal,
            "PDF probe without PDF detail",
        ));
    };
    if info.pages.is_empty() {
        return Err(Error::corrupt("PDF has no pages"));
    }
    let images = Images::open(&input)?;
    let batch = batch_size(&probe, budget)?;
    let width = natural::pad_width(info.pages.len());
    let ways: Vec<Way> = info.pages.iter().map(|p| way(p, o.render_all)).collect();

    let Some(mut atomic) = crate::claim(record, &o.output, &dest)? else {
        return Ok(());
    };
    // Named for its owner, so the next run removes it if this one is killed.
    let tmp = membudget::outputs::scratch_dir(
        dest.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new(".")),
        "pdftoppm",
    )?;
    let (mut copied, mut rendered) = (0usize, 0usize);
    // Pages that are one image but were rendered, and why.
    let mut refused = Vec::new();
    let mut infos = Vec::with_capacity(info.pages.len());
    {
        let zerr = archive::zip_err;
        let mut writeback = archive::Writeback::new(atomic.file());
        let mut zip =
            zip::ZipWriter::new(BufWriter::with_capacity(archive::COPY_BUF, atomic.file()));
        let modified = std::fs::metadata(&input)
            .and_then(|m| m.modified())
            .map_or_else(|_| zip::DateTime::default(), archive::zip_time);
        let mut k = 0usize;
        // What decoding an image may hold: the budget past the process's own overhead.
        let decode_bytes = budget.bytes.saturating_sub(PdfToCbz::default().fixed);
        while k < ways.len() {
            let extracted = match ways[k] {
                Way::Copy(obj) => match images.extract(obj, decode_bytes) {
                    Ok(x) => Some(x),
                    Err(why) => {
                        log::info!("page {}: rendered: {why}", k + 1);
                        refused.push(serde_json::json!({ "page": k + 1, "why": why }));
                        None
                    }
                },
                Way::Render => None,
            };
            if let Some(Extracted { bytes, ext, size }) = extracted {
                let name = natural::padded_name(k, width, ext);
                let head =
                    archive::image_head(&bytes[..bytes.len().min(archive::HEAD_BYTES as usize)]);
                infos.push(PageInfo {
                    width: Some(head.map_or(size[0], |h| h.width)),
                    height: Some(head.map_or(size[1], |h| h.height)),
                    bytes: bytes.len() as u64,
                });
                zip.start_file(
                    name.as_str(),
                    archive::options(&name, bytes.len() as u64, modified),
                )
                .map_err(zerr)?;
                zip.write_all(&bytes)?;
                drop(bytes);
                images.release();
                writeback.wrote(infos.last().map_or(0, |i| i.bytes));
                copied += 1;
                k += 1;
                continue;
            }
            // A run of pages to render, at most `batch` long.
            let mut end = k + 1;
            while end < ways.len() && end - k < batch as usize && ways[end] == Way::Render {
                end += 1;
            }
            let files = render(&input, k as u64 + 1, end as u64, o, tmp.path())?;
            for (j, f) in files.iter().enumerate() {
                let ext = natural::extension(&f.to_string_lossy()).to_string();
                let name = natural::padded_name(k + j, width, &ext);
                let len = std::fs::metadata(f)?.len();
                let head = std::fs::File::open(f).and_then(archive::read_head)?;
                let dims = archive::image_head(&head);
                infos.push(PageInfo {
                    width: dims.map(|d| d.width),
                    height: dims.map(|d| d.height),
                    bytes: len,
                });
                zip.start_file(name.as_str(), archive::options(&name, len, modified))
                    .map_err(zerr)?;
                std::io::copy(&mut BufReader::new(std::fs::File::open(f)?), &mut zip)?;
                std::fs::remove_file(f)?;
                writeback.wrote(len);
                rendered += 1;
            }
            k = end;
        }
        let xml = comicinfo::generate(&infos);
        zip.start_file(
            "ComicInfo.xml",
            archive::options("ComicInfo.xml", xml.len() as u64, modified),
        )
        .map_err(zerr)?;
        zip.write_all(xml.as_bytes())?;
        let mut w = zip.finish().map_err(zerr)?;
        w.flush()?;
    }
    let bytes = archive::commit_verified(atomic, infos.len() + 1)?;
    record.set_in(NAME, "status", "ok");
    record.set_in(NAME, "pages", infos.len());
    record.set_in(NAME, "copied", copied);
    record.set_in(NAME, "rendered", rendered);
    record.set_in(NAME, "render_batch", batch);
    if !refused.is_empty() {
        record.set_in(NAME, "rendered_images", refused);
    }
    record.set_in(NAME, "bytes", bytes);
    if o.delete_source {
        std::fs::remove_file(&input)?;
        record.set_in(NAME, "source_deleted", true);
    }
    Ok(())
}
