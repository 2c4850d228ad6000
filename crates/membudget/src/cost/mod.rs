//! Cost models: the peak RSS an operation reaches as a function of the chunk in flight.
//!
//! Every model is *fixed overhead + cost per unit of work in flight*, written from first
//! principles (what buffers the operation must hold) and then calibrated against measured
//! peak RSS by each tool's tests (the constants say where they come from). A model knows:
//!
//! - which inputs it applies to ([`CostModel::applies`]);
//! - the chunk sizes worth trying, largest first ([`CostModel::chunks`]): the unit is the
//!   model's own (JPEG 2000 tile side, rows of a stack block, points of a spatial tile,
//!   pages of a batch), named by [`CostModel::chunk_unit`];
//! - the peak for a chunk size and a number of workers ([`CostModel::peak_bytes`]);
//! - the peak a whole-input tool would reach ([`CostModel::whole_bytes`]), for the
//!   record's `whole_bytes` and for honest comparisons with peers.
//!
//! [`crate::plan`] searches these models for the largest chunk and the most workers that
//! fit a budget.

pub mod cbz;
pub mod fits_stack;
pub mod laz_features;
pub mod raster_filters;
pub mod strip_convert;

use crate::error::{Error, ErrorKind};
use crate::manifest::Record;
use crate::probe::raster::check_dimensions;
use crate::probe::{ArchiveSummary, DocumentSummary, Format, ImageSummary, PointsSummary, Probe};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::units::MIB;

/// What the cost models need to know about an input: the probe's summaries, without the
/// format-specific detail. Built from a [`Probe`] or read back from a manifest record, so
/// `chunk-plan` can plan from `mem-estimate`'s output without touching the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The format.
    pub format: Format,
    /// File size in bytes.
    pub bytes: u64,
    /// The main image, for raster formats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageSummary>,
    /// The point cloud, for LAS/LAZ/COPC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points: Option<PointsSummary>,
    /// The archive, for ZIP/CBZ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<ArchiveSummary>,
    /// The document, for PDF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<DocumentSummary>,
}

impl Summary {
    /// The summary of a probe.
    pub fn from_probe(p: &Probe) -> Summary {
        Summary {
            format: p.format,
            bytes: p.bytes,
            image: p.image.clone(),
            points: p.points.clone(),
            archive: p.archive.clone(),
            document: p.document.clone(),
        }
    }

    /// The summary written in a record by `mem-estimate`: `Ok(None)` when the record has
    /// none (no known `format`: the file is to be probed). A record is input like any
    /// file, so it is held to the probes' checks: a malformed section is
    /// [`ErrorKind::BadRecord`], zero or absurd image dimensions are `corrupt` or
    /// `hostile` ([`check_dimensions`]), so no cost model ever computes with them.
    pub fn from_record(r: &Record) -> Result<Option<Summary>, Error> {
        let Some(format) = r.get_as::<Format>("format") else {
            return Ok(None);
        };
        let s = Summary {
            format,
            bytes: r.get_as("bytes").unwrap_or(0),
            image: section(r, "image")?,
            points: section(r, "points")?,
            archive: section(r, "archive")?,
            document: section(r, "document")?,
        };
        if let Some(img) = &s.image {
            check_dimensions(img.width, img.height, img.bands, img.bits)?;
            if img.pages == 0 || img.block[0] == 0 || img.block[1] == 0 {
                return Err(Error::corrupt(format!(
                    "record's image has {} pages and blocks of {}x{}",
                    img.pages, img.block[0], img.block[1]
                )));
            }
        }
        Ok(Some(s))
    }
}

/// A summary section of a record: absent or null is `None`; present but not the
/// expected object is an error, not a silent "no image".
fn section<T: serde::de::DeserializeOwned>(r: &Record, key: &str) -> Result<Option<T>, Error> {
    match r.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone()).map(Some).map_err(|e| {
            Error::new(
                ErrorKind::BadRecord,
                format!("record's {key:?} section is malformed: {e}"),
            )
        }),
    }
}

/// A cost model for one operation. See the module documentation.
pub trait CostModel: std::fmt::Debug + Send + Sync {
    /// The tool (or operation) name used as the key in `estimate` and `plan` sections.
    fn name(&self) -> &'static str;
    /// Whether this operation can process the input.
    fn applies(&self, s: &Summary) -> bool;
    /// What the chunk number means (`tile_side`, `rows`, `points`, `pages`).
    fn chunk_unit(&self) -> &'static str;
    /// Chunk sizes worth trying, largest (preferred) first. Never empty when `applies`.
    fn chunks(&self, s: &Summary) -> Vec<u64>;
    /// The smallest chunk that still runs at full speed: the planner trades workers for
    /// chunk size only down to this.
    fn efficient_chunk(&self, s: &Summary) -> u64;
    /// Predicted peak RSS in bytes with `workers` chunks of size `chunk` in flight.
    fn peak_bytes(&self, s: &Summary, chunk: u64, workers: u32) -> u64;
    /// Predicted peak RSS of processing the whole input at once.
    fn whole_bytes(&self, s: &Summary) -> u64;
    /// The chunk's geometry as written in a plan (`{"tile":[1024,1024]}`...).
    fn describe(&self, s: &Summary, chunk: u64) -> Value;
    /// The most workers chunks of size `chunk` can keep busy (e.g. the tiles in the
    /// image): the planner never plans more. Defaults to no limit.
    fn max_workers(&self, _s: &Summary, _chunk: u64) -> u64 {
        u64::MAX
    }
    /// How much work the input is, in arbitrary but comparable units (used to balance
    /// shards). Defaults to the whole-input footprint.
    fn work(&self, s: &Summary) -> f64 {
        self.whole_bytes(s) as f64
    }
    /// The tool's own rule for its geometry and workers within `budget_bytes` (at most
    /// `max_workers`), when the tool decides them otherwise than [`crate::plan`]'s generic
    /// search: `chunk-plan` then plans exactly what the tool would run. Defaults to none.
    /// `generic` is the planner's search for another budget, for rules built on it.
    fn own_plan(
        &self,
        _s: &Summary,
        _budget_bytes: u64,
        _max_workers: u32,
        _generic: &dyn Fn(u64) -> Result<Chosen, Error>,
    ) -> Option<Result<Chosen, Error>> {
        None
    }
    /// The tool options this model was made with, as written in `plan.<tool>.options`
    /// (`{"profile":"bnf","tile":null}`): the tool compares them with its own before it
    /// uses a plan. Null for models without options.
    fn options(&self) -> Value {
        Value::Null
    }
}

/// The most workers from 1 to `max` for which `fits` holds, when fitting only gets harder
/// with more workers (a peak that grows with them): a binary search, so `--jobs 1000000`
/// costs nothing. `None` when not even one fits.
pub fn most_workers(max: u32, fits: impl Fn(u32) -> bool) -> Option<u32> {
    if !fits(1) {
        return None;
    }
    let (mut lo, mut hi) = (1u32, max.max(1));
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Some(lo)
}

/// What a model's own rule ([`CostModel::own_plan`]) chose.
#[derive(Debug, Clone, PartialEq)]
pub struct Chosen {
    /// The chunk in the model's unit.
    pub chunk: u64,
    /// Workers to run at once.
    pub workers: u32,
    /// The geometry as written in the plan (`{"tile":[1024,512]}`).
    pub geometry: Value,
    /// The model's peak for exactly this geometry.
    pub predicted_peak_bytes: u64,
    /// Why, for `-v`.
    pub reasons: Vec<String>,
}

/// The tools' options that change their plans, as `chunk-plan` takes them (each tool
/// flattens its own group): a plan is made for the options its tool will run with.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ToolOptions {
    /// strip-convert's.
    #[command(flatten, next_help_heading = "strip-convert options")]
    pub strip_convert: strip_convert::StripConvertOptions,
    /// laz-enrich's.
    #[command(flatten, next_help_heading = "laz-enrich options")]
    pub laz_enrich: laz_features::LazEnrichOptions,
}

/// Every model with its default parameters, one per tool of the workspace.
pub fn models() -> Vec<Box<dyn CostModel>> {
    models_with(&ToolOptions::default())
}

/// Every model, made with the tools' options.
pub fn models_with(options: &ToolOptions) -> Vec<Box<dyn CostModel>> {
    vec![
        Box::new(strip_convert::StripConvert {
            options: options.strip_convert.clone(),
            ..Default::default()
        }),
        Box::new(raster_filters::TiledFilter::tile_enhance(0, 0)),
        Box::new(raster_filters::TiledFilter::spot_detect()),
        Box::new(fits_stack::FitsStack::default()),
        Box::new(laz_features::LazFeatures {
            options: options.laz_enrich.clone(),
            ..Default::default()
        }),
        Box::new(cbz::CbzPack::default()),
        Box::new(cbz::PdfToCbz::default()),
    ]
}

/// The default model named `name`, if there is one.
pub fn model(name: &str) -> Option<Box<dyn CostModel>> {
    models().into_iter().find(|m| m.name() == name)
}

/// The names of every model, for `--for` and error messages.
pub fn model_names() -> Vec<&'static str> {
    models().iter().map(|m| m.name()).collect()
}

/// One tool's estimate for one input, as written under `estimate.<tool>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// Peak RSS with the smallest chunk and one worker: below this, the input cannot be
    /// processed.
    pub min_bytes: u64,
    /// Peak RSS with the preferred (largest) chunk and one worker.
    pub preferred_bytes: u64,
    /// Peak RSS of a whole-input tool.
    pub whole_bytes: u64,
    /// The unit of chunk sizes.
    pub chunk_unit: String,
    /// The smallest chunk.
    pub min_chunk: u64,
    /// The preferred chunk.
    pub preferred_chunk: u64,
}

/// The estimate of `model` for `s`, if it applies.
pub fn estimate(model: &dyn CostModel, s: &Summary) -> Option<Estimate> {
    if !model.applies(s) {
        return None;
    }
    let chunks = model.chunks(s);
    let (&preferred, &min) = (chunks.first()?, chunks.last()?);
    Some(Estimate {
        min_bytes: model.peak_bytes(s, min, 1),
        preferred_bytes: model.peak_bytes(s, preferred, 1),
        whole_bytes: model.whole_bytes(s),
        chunk_unit: model.chunk_unit().to_string(),
        min_chunk: min,
        preferred_chunk: preferred,
    })
}

/// Write a probe's findings and every applicable estimate into a record.
pub fn annotate(record: &mut Record, probe: &Probe) {
    if let Ok(Value::Object(map)) = serde_json::to_value(probe) {
        for (k, v) in map {
            record.set(k, v);
        }
    }
    let s = Summary::from_probe(probe);
    for m in models() {
        if let Some(e) = estimate(m.as_ref(), &s) {
            if let Ok(v) = serde_json::to_value(e) {
                record.set_in("estimate", m.name(), v);
            }
        }
    }
}

/// Powers of two from `max` down to `min` (both clamped to at least 1), largest first:
/// the usual candidate list for tile sides and batch sizes.
pub fn halving(max: u64, min: u64) -> Vec<u64> {
    let min = min.max(1);
    let mut v = Vec::new();
    let mut c = max.max(min);
    while c >= min {
        v.push(c);
        if c == 1 {
            break;
        }
        c /= 2;
    }
    v
}

/// Tile-side candidates for an image: powers of two from `max` down to `min`, each capped
/// by the image's larger side (a tile larger than the image is the whole image), deduplicated.
pub fn tile_sides(img: &ImageSummary, max: u64, min: u64) -> Vec<u64> {
    let cap = img.width.max(img.height).max(1);
    let mut v: Vec<u64> = halving(max, min).into_iter().map(|t| t.min(cap)).collect();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{Layout, SampleFormat};

    pub(crate) fn rgb(width: u64, height: u64, rows_per_strip: u64) -> Summary {
        Summary {
            format: Format::Tiff,
            bytes: width * height * 3,
            image: Some(ImageSummary {
                width,
                height,
                bands: 3,
                bits: 8,
                sample_format: SampleFormat::Uint,
                pages: 1,
                layout: Layout::Strips,
                block: [width, rows_per_strip],
                compressed: false,
            }),
            points: None,
            archive: None,
            document: None,
        }
    }

    #[test]
    fn halving_lists() {
        assert_eq!(halving(1024, 128), vec![1024, 512, 256, 128]);
        assert_eq!(halving(1, 1), vec![1]);
        assert_eq!(halving(5, 1), vec![5, 2, 1]);
    }

    #[test]
    fn every_model_is_monotonic_in_chunk_and_workers() {
        let s = rgb(10240, 10240, 16);
        for m in models().iter().filter(|m| m.applies(&s)) {
            let chunks = m.chunks(&s);
            assert!(!chunks.is_empty(), "{}", m.name());
            for w in chunks.windows(2) {
                assert!(
                    w[0] > w[1],
                    "{}: chunks not descending {chunks:?}",
                    m.name()
                );
                assert!(
                    m.peak_bytes(&s, w[0], 1) >= m.peak_bytes(&s, w[1], 1),
                    "{}: a larger chunk predicted smaller",
                    m.name()
                );
            }
            let c = chunks[0];
            assert!(
                m.peak_bytes(&s, c, 2) >= m.peak_bytes(&s, c, 1),
                "{}",
                m.name()
            );
            let e = estimate(m.as_ref(), &s).unwrap();
            assert!(e.min_bytes <= e.preferred_bytes, "{}", m.name());
        }
    }

    #[test]
    fn summary_round_trips_through_a_record() {
        let s = rgb(100, 50, 8);
        let mut r = Record::new("x.tif");
        for (k, v) in serde_json::to_value(&s).unwrap().as_object().unwrap() {
            r.set(k.clone(), v.clone());
        }
        let back = Summary::from_record(&Record::parse_line(&r.to_line()).unwrap().unwrap());
        assert_eq!(back, Ok(Some(s)));
    }
}
