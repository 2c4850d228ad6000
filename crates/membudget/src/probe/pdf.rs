//! PDF probe: the page tree and, per page, whether it is a scan (exactly one image
//! XObject painted over the whole page) and that image's geometry and encoding.
//!
//! The file is memory-mapped and handed to the `pdf` crate's `Storage`, which reads the
//! cross-reference table(s) and then parses objects only when asked: pages, resources and
//! image dictionaries are resolved one by one and image data is never read. (`lopdf`'s
//! `Document::load` parses every object up front, so it is not used.) The page tree is
//! walked here, not with the crate's page lookup, so that loops and absurd depths in a
//! hostile tree are caught with a visited set instead of recursing forever. Page content
//! streams are read only for pages with exactly one image XObject, only when small
//! ([`MAX_CONTENT_BYTES`]), and inflated here with a bound so a Flate bomb cannot expand
//! them. The crate has `unwrap`s and `unimplemented!` on some malformed paths, so the
//! whole probe runs under `catch_unwind` and a panic there becomes a corrupt-file error.

use super::{Detail, DocumentSummary, Format, Probe};
use crate::error::{Error, Result};
use pdf::content::{Matrix, Op};
use pdf::file::{NoCache, NoLog, Storage};
use pdf::object::{ParseOptions, PlainRef, Resolve};
use pdf::primitive::{Dictionary, Primitive};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// Pages read at most; a larger page tree is treated as hostile.
pub const MAX_PAGES: usize = 1_000_000;
/// Depth of the page tree walked at most (real trees are a few levels deep).
const MAX_TREE_DEPTH: usize = 64;
/// Largest (raw or inflated) content stream examined to decide whether a page is a scan;
/// a scan's content is a few dozen bytes (`q w 0 0 h x y cm /Im0 Do Q`).
pub const MAX_CONTENT_BYTES: u64 = 1 << 20;
/// An image counts as covering the page when each edge is within this fraction of the
/// page size from the page's edge.
const FULL_PAGE_TOLERANCE: f64 = 0.02;

/// A PDF's pages, as far as a cost model cares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PdfInfo {
    /// The version in the file header, e.g. `"1.7"`.
    pub version: String,
    /// Whether the document is encrypted (opened with the empty user password).
    pub encrypted: bool,
    /// `/Count` of the root page-tree node (may disagree with the pages found).
    pub declared_pages: u64,
    /// Every page, in order.
    pub pages: Vec<PdfPage>,
}

/// One page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PdfPage {
    /// 1-based page number.
    pub page: u64,
    /// `MediaBox` (inherited if need be), `[x0, y0, x1, y1]`.
    pub media_box: [f64; 4],
    /// Image XObjects in the page's resources.
    pub image_xobjects: u32,
    /// Exactly one image XObject, painted once, covering the whole page: a scan.
    pub scan: bool,
    /// The page's single image XObject, if it has exactly one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub image: Option<PdfImage>,
}

/// An image XObject's dictionary (its data is never read).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PdfImage {
    /// Object number.
    pub object: u64,
    /// `/Width`.
    pub width: u64,
    /// `/Height`.
    pub height: u64,
    /// `/BitsPerComponent` (1 for image masks; absent for some JPX images).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub bits: Option<u32>,
    /// Colour space family (`DeviceRGB`, `DeviceGray`, `ICCBased`, `Indexed`...), or
    /// `ImageMask` for a stencil mask.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub color_space: Option<String>,
    /// Colour components, when the colour space says (`/N` of an ICC profile).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub components: Option<u32>,
    /// Filters in order (`DCTDecode`, `JPXDecode`, `FlateDecode`, `CCITTFaxDecode`,
    /// `JBIG2Decode`...); empty for raw samples.
    pub filters: Vec<String>,
}

impl PdfImage {
    /// The encoding of the stored image: the last filter, which decides the codec a reader
    /// needs (`FlateDecode`, or `None` for raw samples).
    pub fn encoding(&self) -> Option<&str> {
        self.filters.last().map(String::as_str)
    }
}

/// A one-line error: the `pdf` crate's message is a chain of "Try at <source file>,
/// caused by" lines whose last line is the actual cause.
fn pdf_err(what: &str, e: pdf::error::PdfError) -> Error {
    let text = e.to_string();
    let cause = text
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("unreadable");
    Error::corrupt(format!("PDF {what}: {cause}"))
}

/// Probe a PDF file.
pub fn probe(path: &Path) -> Result<Probe> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    // SAFETY: the map is read-only and lives only during this probe. A file truncated
    // by another process meanwhile could fault on access; that is the usual mmap caveat,
    // accepted because it keeps the file out of memory except for the pages touched.
    let map = unsafe { memmap2::Mmap::map(&file)? };
    let info = super::catch_panics(|| read_info(Released::new(map)))
        .map_err(|_| Error::corrupt("PDF structure made the parser fail (malformed file)"))??;
    let image_pages = info.pages.iter().filter(|p| p.scan).count() as u64;
    let largest_image = info
        .pages
        .iter()
        .filter(|p| p.scan)
        .filter_map(|p| p.image.as_ref())
        .map(|i| [i.width, i.height])
        .max_by_key(|[w, h]| w.saturating_mul(*h));
    let document = DocumentSummary {
        pages: info.pages.len() as u64,
        image_pages,
        largest_image,
    };
    Ok(Probe {
        format: Format::Pdf,
        bytes: len,
        image: None,
        points: None,
        archive: None,
        document: Some(document),
        detail: Detail::Pdf(info),
    })
}

/// A file map that drops the pages it has mapped in every [`Released::EVERY`] reads.
/// The kernel maps in large folios around each object read (over 1 MB per image stream
/// on img2pdf output, whose dictionaries sit next to their data), and a file mapping's
/// resident pages count in RSS: without this the probe's peak grew to a third of the
/// PDF's size. The pages stay in the page cache, so a read after a drop costs a fault.
struct Released {
    map: memmap2::Mmap,
    reads: std::cell::Cell<u32>,
}

impl Released {
    const EVERY: u32 = 8;

    fn new(map: memmap2::Mmap) -> Released {
        Released {
            map,
            reads: std::cell::Cell::new(0),
        }
    }
}

impl std::ops::Deref for Released {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        let n = self.reads.get().wrapping_add(1);
        self.reads.set(n);
        if n.is_multiple_of(Self::EVERY) && !self.map.is_empty() {
            // SAFETY: the range is exactly this live read-only file mapping;
            // MADV_DONTNEED on it only drops page-table entries, and slices handed out
            // earlier read the same file bytes when they fault back in.
            unsafe {
                libc::madvise(
                    self.map.as_ptr() as *mut libc::c_void,
                    self.map.len(),
                    libc::MADV_DONTNEED,
                );
            }
        }
        &self.map
    }
}

/// Reads the page tree of a PDF held in `data` (a map of the file, or bytes).
pub fn read_info<B: pdf::backend::Backend>(data: B) -> Result<PdfInfo> {
    let mut storage = Storage::with_cache(data, ParseOptions::tolerant(), NoCache, NoCache, NoLog)
        .map_err(|e| pdf_err("header", e))?;
    let version = storage.version().unwrap_or_default();
    let trailer = storage.load_storage_and_trailer().map_err(|e| {
        if matches!(e, pdf::error::PdfError::InvalidPassword) {
            Error::unsupported("PDF is encrypted with a user password")
        } else {
            pdf_err("cross-reference table", e)
        }
    })?;
    let encrypted = trailer.get("Encrypt").is_some();
    let r = storage.resolver();
    let catalog = dict(&r, trailer.get("Root"), "catalog (/Root)")?;
    let root = catalog
        .get("Pages")
        .ok_or_else(|| Error::corrupt("PDF catalog has no /Pages"))?;
    let root_ref = match root {
        Primitive::Reference(p) => Some(*p),
        _ => None,
    };
    let root_dict = dict(&r, Some(root), "page tree root")?;
    let declared_pages = root_dict
        .get("Count")
        .and_then(|c| c.as_integer().ok())
        .map_or(0, |c| u64::try_from(c).unwrap_or(0));
    let pages = walk_pages(&r, root_ref, root_dict)?;
    Ok(PdfInfo {
        version: version.trim().trim_start_matches("PDF-").to_string(),
        encrypted,
        declared_pages,
        pages,
    })
}

/// Resolves `p` (following references) to a dictionary; streams give their dictionary.
fn dict(r: &impl Resolve, p: Option<&Primitive>, what: &str) -> Result<Dictionary> {
    let p = p.ok_or_else(|| Error::corrupt(format!("PDF has no {what}")))?;
    match p.clone().resolve(r).map_err(|e| pdf_err(what, e))? {
        Primitive::Dictionary(d) => Ok(d),
        Primitive::Stream(s) => Ok(s.info),
        other => Err(Error::corrupt(format!(
            "PDF {what} is a {}, not a dictionary",
            other.get_debug_name()
        ))),
    }
}

fn resolve(r: &impl Resolve, p: &Primitive) -> Option<Primitive> {
    p.clone().resolve(r).ok()
}

fn number(r: &impl Resolve, p: Option<&Primitive>) -> Option<f64> {
    match resolve(r, p?)? {
        Primitive::Integer(i) => Some(f64::from(i)),
        Primitive::Number(n) => Some(f64::from(n)),
        _ => None,
    }
}

fn rect(r: &impl Resolve, p: Option<&Primitive>) -> Option<[f64; 4]> {
    let arr = resolve(r, p?)?.into_array().ok()?;
    if arr.len() != 4 {
        return None;
    }
    let mut out = [0.0; 4];
    for (o, v) in out.iter_mut().zip(&arr) {
        *o = number(r, Some(v))?;
    }
    // Normalise: PDF allows any two opposite corners.
    Some([
        out[0].min(out[2]),
        out[1].min(out[3]),
        out[0].max(out[2]),
        out[1].max(out[3]),
    ])
}

/// Attributes a page inherits from its ancestors (PDF 32000-1, 7.7.3.4).
#[derive(Clone, Default)]
struct Inherited {
    resources: Option<Primitive>,
    media_box: Option<[f64; 4]>,
    crop_box: Option<[f64; 4]>,
}

/// Walks the page tree depth-first in document order, refusing loops.
fn walk_pages(
    r: &impl Resolve,
    root_ref: Option<PlainRef>,
    root: Dictionary,
) -> Result<Vec<PdfPage>> {
    let mut pages = Vec::new();
    let mut seen: HashSet<PlainRef> = root_ref.into_iter().collect();
    // A stack of (node, inherited attributes, depth); kids are pushed in reverse.
    let mut stack = vec![(root, Inherited::default(), 0usize)];
    while let Some((node, parent, depth)) = stack.pop() {
        let mut inh = parent;
        if let Some(res) = node.get("Resources") {
            inh.resources = Some(res.clone());
        }
        if let Some(mb) = rect(r, node.get("MediaBox")) {
            inh.media_box = Some(mb);
        }
        if let Some(cb) = rect(r, node.get("CropBox")) {
            inh.crop_box = Some(cb);
        }
        let is_pages = match node.get("Type").and_then(|t| t.as_name().ok()) {
            Some("Pages") => true,
            Some("Page") => false,
            // Some writers omit /Type: a node with /Kids is an interior node.
            _ => node.get("Kids").is_some(),
        };
        if !is_pages {
            if pages.len() >= MAX_PAGES {
                return Err(Error::hostile(format!(
                    "PDF has more than {MAX_PAGES} pages"
                )));
            }
            pages.push(describe_page(r, &node, &inh, pages.len() as u64 + 1));
            continue;
        }
        if depth >= MAX_TREE_DEPTH {
            return Err(Error::hostile(format!(
                "PDF page tree deeper than {MAX_TREE_DEPTH} levels"
            )));
        }
        let kids = match node.get("Kids").and_then(|k| resolve(r, k)) {
            Some(Primitive::Array(k)) => k,
            _ => return Err(Error::corrupt("PDF page-tree node has no /Kids array")),
        };
        let mut children = Vec::with_capacity(kids.len().min(4096));
        for kid in kids {
            if let Primitive::Reference(kr) = kid {
                if !seen.insert(kr) {
                    return Err(Error::corrupt(format!(
                        "PDF page tree has a loop or a shared node (object {} is reached twice)",
                        kr.id
                    )));
                }
                if seen.len() > MAX_PAGES + 100_000 {
                    return Err(Error::hostile("PDF page tree has too many nodes"));
                }
            }
            let child = dict(r, Some(&kid), "page-tree node")?;
            children.push((child, inh.clone(), depth + 1));
        }
        stack.extend(children.into_iter().rev());
    }
    Ok(pages)
}

/// Describes one page: its size and, if it has exactly one image XObject, that image and
/// whether the content paints it over the whole page.
fn describe_page(r: &impl Resolve, page: &Dictionary, inh: &Inherited, number: u64) -> PdfPage {
    // US Letter is the default the reference gives for a missing MediaBox.
    let media_box = inh.media_box.unwrap_or([0.0, 0.0, 612.0, 792.0]);
    let visible = inh
        .crop_box
        .map_or(media_box, |cb| intersect(cb, media_box));
    let images = image_xobjects(r, inh.resources.as_ref());
    let mut out = PdfPage {
        page: number,
        media_box,
        image_xobjects: images.len() as u32,
        scan: false,
        image: None,
    };
    if let [(name, image)] = images.as_slice() {
        out.image = Some(image.clone());
        let plain_gs = |gs: &str| plain_graphics_state(r, inh.resources.as_ref(), gs);
        out.scan = content_ops(r, page)
            .is_some_and(|ops| paints_full_page(&ops, name, visible, &plain_gs));
    }
    out
}

fn intersect(a: [f64; 4], b: [f64; 4]) -> [f64; 4] {
    [
        a[0].max(b[0]),
        a[1].max(b[1]),
        a[2].min(b[2]),
        a[3].min(b[3]),
    ]
}

/// The image XObjects of a resource dictionary, with their resource names.
fn image_xobjects(r: &impl Resolve, resources: Option<&Primitive>) -> Vec<(String, PdfImage)> {
    let Some(Primitive::Dictionary(res)) = resources.and_then(|p| resolve(r, p)) else {
        return Vec::new();
    };
    let Some(Primitive::Dictionary(xobjects)) = res.get("XObject").and_then(|p| resolve(r, p))
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, value) in xobjects.iter() {
        let object = match value {
            Primitive::Reference(pr) => pr.id,
            _ => 0,
        };
        let Some(Primitive::Stream(s)) = resolve(r, value) else {
            continue;
        };
        if s.info.get("Subtype").and_then(|t| t.as_name().ok()) != Some("Image") {
            continue;
        }
        out.push((name.as_str().to_string(), image_info(r, &s.info, object)));
    }
    out
}

fn image_info(r: &impl Resolve, d: &Dictionary, object: u64) -> PdfImage {
    let int = |key: &str| -> Option<u64> {
        number(r, d.get(key))
            .filter(|v| *v >= 0.0)
            .map(|v| v as u64)
    };
    let mask = matches!(
        d.get("ImageMask").and_then(|p| resolve(r, p)),
        Some(Primitive::Boolean(true))
    );
    let (color_space, components) = if mask {
        (Some("ImageMask".to_string()), Some(1))
    } else {
        color_space(r, d.get("ColorSpace").or_else(|| d.get("CS")))
    };
    let filters = match d.get("Filter").and_then(|p| resolve(r, p)) {
        Some(Primitive::Name(n)) => vec![n.as_str().to_string()],
        Some(Primitive::Array(a)) => a
            .iter()
            .filter_map(|f| resolve(r, f))
            .filter_map(|f| f.as_name().ok().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    PdfImage {
        object,
        width: int("Width").unwrap_or(0),
        height: int("Height").unwrap_or(0),
        bits: if mask {
            Some(1)
        } else {
            int("BitsPerComponent").map(|b| b as u32)
        },
        color_space,
        components,
        filters,
    }
}

/// A colour space's family name and component count, when known.
fn color_space(r: &impl Resolve, p: Option<&Primitive>) -> (Option<String>, Option<u32>) {
    let Some(p) = p.and_then(|p| resolve(r, p)) else {
        return (None, None);
    };
    let (family, arr) = match &p {
        Primitive::Name(n) => (n.as_str().to_string(), None),
        Primitive::Array(a) => match a.first().and_then(|f| resolve(r, f)) {
            Some(Primitive::Name(n)) => (n.as_str().to_string(), Some(a)),
            _ => return (None, None),
        },
        _ => return (None, None),
    };
    let components = match family.as_str() {
        "DeviceGray" | "CalGray" | "G" | "Indexed" | "I" | "Separation" => Some(1),
        "DeviceRGB" | "CalRGB" | "RGB" | "Lab" => Some(3),
        "DeviceCMYK" | "CMYK" => Some(4),
        "ICCBased" => arr
            .and_then(|a| a.get(1))
            .and_then(|s| match resolve(r, s) {
                Some(Primitive::Stream(s)) => number(r, s.info.get("N")).map(|n| n as u32),
                _ => None,
            }),
        _ => None,
    };
    (Some(family), components)
}

/// The page's content operators, if the content is small enough to examine.
fn content_ops(r: &impl Resolve, page: &Dictionary) -> Option<Vec<Op>> {
    let contents = resolve(r, page.get("Contents")?)?;
    let parts = match contents {
        Primitive::Array(a) => a,
        other => vec![other],
    };
    let mut data = Vec::new();
    for part in parts.iter().take(64) {
        let Some(Primitive::Stream(s)) = resolve(r, part) else {
            return None;
        };
        let raw_len = number(r, s.info.get("Length"))?;
        if raw_len > MAX_CONTENT_BYTES as f64 {
            return None;
        }
        let raw = s.raw_data(r).ok()?;
        let filter = match s.info.get("Filter").and_then(|f| resolve(r, f)) {
            None => None,
            Some(Primitive::Name(n)) => Some(n.as_str().to_string()),
            Some(Primitive::Array(a)) if a.len() == 1 => a[0].as_name().ok().map(str::to_string),
            // Chained or exotic filters on a page's content: not a simple scan page.
            Some(_) => return None,
        };
        match filter.as_deref() {
            None => data.extend_from_slice(&raw),
            Some("FlateDecode" | "Fl") => inflate_bounded(&raw, &mut data)?,
            Some(_) => return None,
        }
        // Content streams of one page are concatenated with whitespace between them.
        data.push(b'\n');
    }
    pdf::content::parse_ops(&data, r).ok()
}

/// Inflates zlib (or raw deflate) data into `out`, giving up past [`MAX_CONTENT_BYTES`].
fn inflate_bounded(raw: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let limit = MAX_CONTENT_BYTES.saturating_sub(out.len() as u64);
    let start = out.len();
    let mut z = flate2::read::ZlibDecoder::new(raw).take(limit + 1);
    if z.read_to_end(out).is_err() {
        out.truncate(start);
        let mut d = flate2::read::DeflateDecoder::new(raw).take(limit + 1);
        d.read_to_end(out).ok()?;
    }
    ((out.len() - start) as u64 <= limit).then_some(())
}

fn mul(m: &Matrix, n: &[f64; 6]) -> [f64; 6] {
    // Row-vector convention of PDF: new CTM = m x CTM.
    let (a, b, c, d, e, f) = (
        f64::from(m.a),
        f64::from(m.b),
        f64::from(m.c),
        f64::from(m.d),
        f64::from(m.e),
        f64::from(m.f),
    );
    [
        a * n[0] + b * n[2],
        a * n[1] + b * n[3],
        c * n[0] + d * n[2],
        c * n[1] + d * n[3],
        e * n[0] + f * n[2] + n[4],
        e * n[1] + f * n[3] + n[5],
    ]
}

/// Whether graphics state `name` of the page's /ExtGState resources leaves an image
/// painted under it as it is: no soft mask, no constant alpha below 1, no blend mode
/// but Normal, no transfer function. Line and halftone parameters, which do not change
/// an image's pixels on screen, are allowed; a missing state is not.
fn plain_graphics_state(r: &impl Resolve, resources: Option<&Primitive>, name: &str) -> bool {
    let Some(Primitive::Dictionary(res)) = resources.and_then(|p| resolve(r, p)) else {
        return false;
    };
    let Some(Primitive::Dictionary(states)) = res.get("ExtGState").and_then(|p| resolve(r, p))
    else {
        return false;
    };
    let Some(Primitive::Dictionary(gs)) = states.get(name).and_then(|p| resolve(r, p)) else {
        return false;
    };
    let name_is = |key: &str, ok: &[&str]| match gs.get(key).and_then(|p| resolve(r, p)) {
        None => true,
        Some(Primitive::Name(n)) => ok.contains(&n.as_str()),
        Some(Primitive::Array(a)) if key == "BM" => a
            .first()
            .and_then(|p| resolve(r, p))
            .is_some_and(|p| p.as_name().is_ok_and(|n| ok.contains(&n))),
        Some(_) => false,
    };
    let opaque = |key: &str| gs.get(key).is_none() || number(r, gs.get(key)) == Some(1.0);
    name_is("SMask", &["None"])
        && name_is("BM", &["Normal", "Compatible"])
        && name_is("TR", &["Identity"])
        && name_is("TR2", &["Identity", "Default"])
        && opaque("CA")
        && opaque("ca")
}

/// Whether the content paints XObject `name` exactly once, with the unit square mapped
/// over the whole visible page, and nothing else that shows: no other XObject, inline
/// image, shading or painted path, no visible text (invisible text, the OCR layer of a
/// scan, is allowed), no clipping path but a rectangle around the whole page, and no
/// graphics state that changes how the image looks (`plain_gs`: soft masks, alpha,
/// blend modes). Such a page is the image itself.
fn paints_full_page(
    ops: &[Op],
    name: &str,
    page: [f64; 4],
    plain_gs: &dyn Fn(&str) -> bool,
) -> bool {
    use pdf::content::TextMode;
    let (w, h) = (page[2] - page[0], page[3] - page[1]);
    if w <= 0.0 || h <= 0.0 {
        return false;
    }
    // Whether the axis-aligned box of `rect` (x, y, width, height) under `ctm` covers
    // the page, within the tolerance.
    let covers = |rect: [f64; 4], ctm: &[f64; 6]| {
        let [x, y, rw, rh] = rect;
        let corners = [(x, y), (x + rw, y), (x, y + rh), (x + rw, y + rh)].map(|(x, y)| {
            (
                x * ctm[0] + y * ctm[2] + ctm[4],
                x * ctm[1] + y * ctm[3] + ctm[5],
            )
        });
        let xs = corners.map(|c| c.0);
        let ys = corners.map(|c| c.1);
        let bbox = [
            xs.iter().copied().fold(f64::INFINITY, f64::min),
            ys.iter().copied().fold(f64::INFINITY, f64::min),
            xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            ys.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        ];
        bbox[0] <= page[0] + FULL_PAGE_TOLERANCE * w
            && bbox[1] <= page[1] + FULL_PAGE_TOLERANCE * h
            && bbox[2] >= page[2] - FULL_PAGE_TOLERANCE * w
            && bbox[3] >= page[3] - FULL_PAGE_TOLERANCE * h
    };
    // The graphics state that matters here: the CTM and the text rendering mode.
    let mut ctm = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0];
    let mut invisible_text = false;
    let mut saved = Vec::new();
    // The rectangles of the path being built, and whether it has other segments.
    let mut path: Vec<[f64; 4]> = Vec::new();
    let mut curved = false;
    let mut clip_pending = false;
    let mut painted = 0;
    let mut image_covers = false;
    for op in ops {
        match op {
            Op::Save => saved.push((ctm, invisible_text)),
            Op::Restore => (ctm, invisible_text) = saved.pop().unwrap_or((ctm, invisible_text)),
            Op::Transform { matrix } => ctm = mul(matrix, &ctm),
            Op::XObject { name: n } if n.as_str() == name => {
                painted += 1;
                // The image occupies the unit square in its space.
                image_covers = covers([0.0, 0.0, 1.0, 1.0], &ctm);
            }
            Op::GraphicsState { name: n } if !plain_gs(n.as_str()) => return false,
            Op::TextRenderMode { mode } => invisible_text = matches!(mode, TextMode::Invisible),
            Op::TextDraw { .. } | Op::TextDrawAdjusted { .. } if !invisible_text => return false,
            Op::Rect { rect } => path.push([
                f64::from(rect.x),
                f64::from(rect.y),
                f64::from(rect.width),
                f64::from(rect.height),
            ]),
            Op::MoveTo { .. } | Op::LineTo { .. } | Op::CurveTo { .. } | Op::Close => {
                curved = true;
            }
            Op::Clip { .. } => clip_pending = true,
            Op::EndPath => {
                // `W n`: clipping by the path; one rectangle around the page clips nothing.
                if clip_pending
                    && (curved || path.len() != 1 || !path.iter().all(|r| covers(*r, &ctm)))
                {
                    return false;
                }
                path.clear();
                curved = false;
                clip_pending = false;
            }
            // Anything else that paints.
            Op::XObject { .. }
            | Op::InlineImage { .. }
            | Op::Shade { .. }
            | Op::Stroke
            | Op::Fill { .. }
            | Op::FillAndStroke { .. } => return false,
            _ => {}
        }
    }
    painted == 1 && image_covers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_inflate() {
        use std::io::Write;
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(&vec![b' '; (MAX_CONTENT_BYTES * 4) as usize])
            .unwrap();
        let bomb = e.finish().unwrap();
        let mut out = Vec::new();
        assert!(inflate_bounded(&bomb, &mut out).is_none());
        assert!(out.len() as u64 <= MAX_CONTENT_BYTES + 1);
    }

    #[test]
    fn full_page_matrix() {
        let ops =
            pdf::content::parse_ops(b"q 600 0 0 900 0 0 cm /Im0 Do Q", &pdf::object::NoResolve)
                .unwrap();
        assert!(paints_full_page(
            &ops,
            "Im0",
            [0.0, 0.0, 600.0, 900.0],
            &|_| true
        ));
        assert!(!paints_full_page(
            &ops,
            "Im0",
            [0.0, 0.0, 1200.0, 900.0],
            &|_| true
        ));
        let ops =
            pdf::content::parse_ops(b"q 300 0 0 900 0 0 cm /Im0 Do Q", &pdf::object::NoResolve)
                .unwrap();
        assert!(!paints_full_page(
            &ops,
            "Im0",
            [0.0, 0.0, 600.0, 900.0],
            &|_| true
        ));
    }

    #[test]
    fn nothing_else_shows() {
        let page = [0.0, 0.0, 600.0, 900.0];
        let plain = |gs: &str| gs == "GS0";
        let scan = |content: &[u8]| {
            let ops = pdf::content::parse_ops(content, &pdf::object::NoResolve).unwrap();
            paints_full_page(&ops, "Im0", page, &plain)
        };
        // A clip around the page, a plain graphics state, an invisible OCR layer.
        assert!(scan(
            b"q 0 0 600 900 re W n /GS0 gs 600 0 0 900 0 0 cm /Im0 Do Q"
        ));
        assert!(scan(
            b"q 600 0 0 900 0 0 cm /Im0 Do Q BT 3 Tr /F1 12 Tf 10 10 Td (ocr) Tj ET"
        ));
        // A soft mask or alpha in the graphics state, visible text, a stroke, a
        // smaller clip, another XObject.
        assert!(!scan(b"q /GS1 gs 600 0 0 900 0 0 cm /Im0 Do Q"));
        assert!(!scan(
            b"q 600 0 0 900 0 0 cm /Im0 Do Q BT /F1 12 Tf 10 10 Td (stamp) Tj ET"
        ));
        assert!(!scan(
            b"q 600 0 0 900 0 0 cm /Im0 Do Q BT 3 Tr ET BT 0 Tr /F1 9 Tf (x) Tj ET"
        ));
        assert!(!scan(b"q 600 0 0 900 0 0 cm /Im0 Do Q 0 0 m 10 10 l S"));
        assert!(!scan(b"q 0 0 300 900 re W n 600 0 0 900 0 0 cm /Im0 Do Q"));
        assert!(!scan(b"q 600 0 0 900 0 0 cm /Im0 Do Q /Fm0 Do"));
    }
}
