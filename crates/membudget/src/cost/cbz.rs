//! Cost models of the comic-archive tools: packing images into a CBZ, and PDF to CBZ.
//!
//! Packing streams each entry from disk into the archive through a fixed buffer, so its
//! memory is independent of the archive's size; the batch is the number of entries read
//! ahead (and checked) at once, each of which may be held whole. PDF to CBZ extracts each
//! page's embedded image bytes (a scan) or renders the page (vector pages): a batch of
//! pages holds that many decoded page bitmaps.

use super::{halving, CostModel, Summary, MIB};
use crate::probe::Format;
use serde_json::{json, Value};

/// Packing or repacking a ZIP/CBZ.
#[derive(Debug, Clone)]
pub struct CbzPack {
    /// Process overhead, including the deflate state and copy buffer.
    pub fixed: u64,
}

impl Default for CbzPack {
    fn default() -> Self {
        CbzPack { fixed: 6 * MIB }
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
    fn chunks(&self, s: &Summary) -> Vec<u64> {
        let n = s.archive.as_ref().map(|a| a.entries).unwrap_or(1).max(1);
        let mut v: Vec<u64> = halving(64, 1).into_iter().map(|b| b.min(n)).collect();
        v.dedup();
        v
    }
    fn efficient_chunk(&self, _s: &Summary) -> u64 {
        4
    }
    fn peak_bytes(&self, s: &Summary, batch: u64, workers: u32) -> u64 {
        let largest = s
            .archive
            .as_ref()
            .map(|a| a.largest_entry_bytes)
            .unwrap_or(0);
        self.fixed
            .saturating_add(largest.saturating_mul(batch))
            .saturating_add(MIB.saturating_mul(u64::from(workers.max(1))))
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
    /// Process overhead (the PDF parser's object cache included).
    pub fixed: u64,
    /// Bitmap of a rendered vector page: A4 at 300 dpi, RGB.
    pub rendered_page_bytes: u64,
}

impl Default for PdfToCbz {
    fn default() -> Self {
        PdfToCbz {
            fixed: 16 * MIB,
            rendered_page_bytes: 2480 * 3508 * 3,
        }
    }
}

impl PdfToCbz {
    fn page_bytes(&self, s: &Summary) -> u64 {
        let scan = s
            .document
            .as_ref()
            .and_then(|d| d.largest_image)
            .map(|[w, h]| w.saturating_mul(h).saturating_mul(3))
            .unwrap_or(0);
        let any_vector = s.document.as_ref().is_some_and(|d| d.image_pages < d.pages);
        if any_vector {
            scan.max(self.rendered_page_bytes)
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
    fn peak_bytes(&self, s: &Summary, batch: u64, workers: u32) -> u64 {
        self.fixed.saturating_add(
            self.page_bytes(s)
                .saturating_mul(batch)
                .saturating_mul(u64::from(workers.max(1))),
        )
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
