//! Cost models of the comic-archive tools: packing images into a CBZ, and PDF to CBZ.
//!
//! Both were measured (tools/cbz-stream/tests/cost_model.rs holds them to 20%): every
//! `cbz-stream` operation on an archive (pack, unpack, list, edit) streams one entry at a
//! time through fixed copy buffers, so its peak is the process's own (about 10 MiB for
//! the test build, whatever the entry sizes) plus the central directory it holds, a few
//! hundred bytes an entry. `from-pdf` holds one page image at a time (its stream bytes
//! and, for a decoded image, the PNG it becomes), or has `pdftoppm` render one page
//! bitmap at a time: the render batch is how many pages one `pdftoppm` run renders in
//! turn, not how many bitmaps are held at once, so it does not multiply the peak.

use super::{halving, CostModel, Summary, MIB};
use crate::probe::Format;
use serde_json::{json, Value};

/// Packing or repacking a ZIP/CBZ.
#[derive(Debug, Clone)]
pub struct CbzPack {
    /// Process overhead, including the deflate state and copy buffers.
    pub fixed: u64,
    /// Memory per central-directory entry (the zip crate's entry and our own).
    pub per_entry: u64,
}

impl Default for CbzPack {
    fn default() -> Self {
        CbzPack {
            fixed: 10 * MIB + MIB / 2,
            per_entry: 512,
        }
    }
}

impl CostModel for CbzPack {
    fn name(&self) -> &'static str {
        "cbz-stream"
    }
    fn applies(&self, s: &Summary) -> bool {
        s.format == Format::Zip && s.archive.is_some()
    }
    fn chunk_unit(&self) -> &'static str {
        "entries"
    }
    fn chunks(&self, _s: &Summary) -> Vec<u64> {
        // One entry in flight, whatever its size.
        vec![1]
    }
    fn efficient_chunk(&self, _s: &Summary) -> u64 {
        1
    }
    fn peak_bytes(&self, s: &Summary, _batch: u64, workers: u32) -> u64 {
        let entries = s.archive.as_ref().map_or(0, |a| a.entries);
        self.per_entry
            .saturating_mul(entries)
            .saturating_add(self.fixed)
            .saturating_mul(u64::from(workers.max(1)))
    }
    fn whole_bytes(&self, s: &Summary) -> u64 {
        self.fixed.saturating_add(
            s.archive
                .as_ref()
                .map(|a| a.uncompressed_bytes)
                .unwrap_or(0),
        )
    }
    fn describe(&self, _s: &Summary, batch: u64) -> Value {
        json!({ "entries": batch })
    }
}

/// PDF pages to CBZ images.
#[derive(Debug, Clone)]
pub struct PdfToCbz {
    /// Process overhead (the PDF parser and the zip writer).
    pub fixed: u64,
    /// Bitmap of a rendered vector page: A4 at 300 dpi, RGB.
    pub rendered_page_bytes: u64,
    /// `pdftoppm`'s own overhead besides the bitmap (poppler, fonts, the JPEG encoder).
    pub renderer_bytes: u64,
}

impl Default for PdfToCbz {
    fn default() -> Self {
        PdfToCbz {
            fixed: 11 * MIB,
            rendered_page_bytes: 2480 * 3508 * 3,
            renderer_bytes: 8 * MIB,
        }
    }
}

impl PdfToCbz {
    /// One page's memory past the fixed part.
    fn page_bytes(&self, s: &Summary) -> u64 {
        // A page image's stream bytes twice (the mapped file pages and the copy the
        // PDF parser hands out, or the PNG it is decoded to) and the kernel's mapping
        // slack around them, one page at a time. Stream bytes are not in the summary:
        // 1.5 bytes a pixel held 12-16% of measured on img2pdf scans from 0.45 (A4
        // photos) to 1 byte a pixel (noise).
        let scan = s
            .document
            .as_ref()
            .and_then(|d| d.largest_image)
            .map_or(0, |[w, h]| w.saturating_mul(h).saturating_mul(3) / 2 + MIB);
        let any_vector = s.document.as_ref().is_some_and(|d| d.image_pages < d.pages);
        if any_vector {
            scan.max(self.rendered_page_bytes + self.renderer_bytes)
        } else {
            scan
        }
    }
}

impl CostModel for PdfToCbz {
    fn name(&self) -> &'static str {
        "pdf-to-cbz"
    }
    fn applies(&self, s: &Summary) -> bool {
        s.format == Format::Pdf && s.document.is_some()
    }
    fn chunk_unit(&self) -> &'static str {
        "pages"
    }
    fn chunks(&self, s: &Summary) -> Vec<u64> {
        let n = s.document.as_ref().map(|d| d.pages).unwrap_or(1).max(1);
        let mut v: Vec<u64> = halving(32, 1).into_iter().map(|b| b.min(n)).collect();
        v.dedup();
        v
    }
    fn efficient_chunk(&self, _s: &Summary) -> u64 {
        2
    }
    fn peak_bytes(&self, s: &Summary, _batch: u64, workers: u32) -> u64 {
        self.fixed
            .saturating_add(self.page_bytes(s))
            .saturating_mul(u64::from(workers.max(1)))
    }
    fn whole_bytes(&self, s: &Summary) -> u64 {
        let n = s.document.as_ref().map(|d| d.pages).unwrap_or(0);
        self.fixed
            .saturating_add(self.page_bytes(s).saturating_mul(n))
    }
    fn describe(&self, _s: &Summary, batch: u64) -> Value {
        json!({ "pages": batch })
    }
}
