//! `tile-enhance enhance`: the steps given (or the default chain), in order, on full-width
//! bands of rows; whole-image statistics from a first streaming pass; output written band
//! by band (TIFF, PNG or JPEG) under a temporary name and renamed into place.

use crate::chain::{self, Shape, Size, Step};
use anyhow::Result;
use clap::{ArgAction, ArgMatches, Args, ValueEnum};
use membudget::cli::{AtomicFile, DirectWriter, InputArgs, LogArgs, OutputArgs, Status};
use membudget::cost::raster_filters::TiledFilter;
use membudget::cost::{CostModel, Summary};
use membudget::driver::{Job, ProcessingArgs, Room};
use membudget::probe::{Detail, Format, Probe};
use membudget::readahead::read_ahead_with;
use membudget::{plan, Error, ErrorKind, Record};
use raster::jpeg::{JpegRows, JpegWriter};
use raster::png::{PngSource, PngWriter};
use raster::tiff::TiffPage;
use raster::write::{Compression, Meta, RowSink, TiffWriter};
use raster::{Band, Edge, RowSource};
use serde_json::json;
use std::ffi::OsString;
use std::io::{BufReader, Read};
use std::path::Path;

/// `--help` text.
pub const LONG_ABOUT: &str = "\
Tone curves, filters and resizing on images larger than memory, seamless: the image is \
read by full-width bands of rows, each neighbourhood step sees a halo of rows around its \
band (rows and columns outside the image by --edge), and whole-image statistics come \
from a streaming pass before the pass that writes, so the result equals the whole-image \
result bit for bit whatever the band size.

Steps apply in the order given on the command line; without any, the default chain \
(--default-chain) runs: --curve, --gamma 0.9, --brightness 1.03, --contrast 1.05, \
--autocontrast 1. Point steps act on the colour components only (alpha is left alone) \
and round as Pillow does: --brightness and --contrast are ImageEnhance's blends \
(single precision, truncated; --contrast around the rounded mean of the greyscale image, \
ITU-R 601-2 luma), --autocontrast is ImageOps.autocontrast (per component, CUTOFF percent \
of the samples cut at each end). --gamma G maps v to max (v/max)^(1/G) (G above 1 \
brightens). --curve is the comic-reader S-curve 255(0.5 - 0.5 cos(pi i/255)), shadows \
below 64 lifted by 0.1(64 - i), blended back to the identity above 128 with weight \
(i - 128)/127. On 16-bit data the same formulas run over 0..65535.

Neighbourhood steps: --blur SIGMA is scipy.ndimage's Gaussian (radius int(4 sigma + \
0.5)); --unsharp SIGMA,AMOUNT[,THRESHOLD] adds AMOUNT times the difference from that \
blur where it is at least THRESHOLD levels; --median R is the median of the (2R+1)^2 \
square; all three act on colour components. --resize WxH fits inside the box (with \
--fill: covers it and crops the centre), --resize P% scales both sides; --max-pixels N \
shrinks an image of more than N pixels to at most N. Resizing is Lanczos3 with Pillow's \
coefficients (support 3 times the scale when shrinking, taps clipped at the edges), on \
every component.

Inputs: TIFF (first page; gray, gray+alpha, RGB, RGBA, 8 or 16 bits, as raster's TIFF \
reader reads them: palette expanded to RGB), PNG (non-interlaced; palette expanded, \
16 bits kept) and JPEG (8-bit gray or RGB, by scanlines through libjpeg-turbo; a \
progressive JPEG only when its coefficients fit the memory budget). CMYK, float, signed \
and other depths than 8 and 16 bits are refused with an error record. Outputs: --format \
tiff (striped, or tiled with --tile; --compression none, deflate, lzw or zstd; default: \
the input's when it is one of these, else deflate; BigTIFF when the data may pass 4 \
GiB; a row of tiles is held until it is complete), png, or jpeg (baseline, written by \
scanlines at --quality, 4:4:4 chroma from quality 90, 4:2:0 below; 8-bit gray or RGB \
only: a 16-bit or alpha image is refused with an error record, write TIFF or PNG for \
it); default: the input's format. The ICC profile, resolution (JFIF density in JPEG: \
dots per inch when whole, else per centimetre) and alpha are carried over; \
premultiplied alpha is kept as stored (TIFF only). Output name: <stem>.tif, <stem>.png \
or <stem>.jpg under --output-dir, <stem>_enhanced.<ext> beside the input without it.

Memory: the band height and threads are planned from --memory-limit with membudget's \
tile-enhance model (full-width bands; the halos of the chain's neighbourhood steps); \
--band-rows sets the band height. One record per input with a `tile-enhance` section: \
output, format, steps, statistics, passes, band_rows, halo, threads, \
predicted_peak_rss, peak_rss, seconds.
";

/// What stands outside the image for neighbourhood steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EdgeArg {
    /// The edge row or column repeated (scipy.ndimage `nearest`)
    Replicate,
    /// Reflected about the edge sample, not repeated (scipy.ndimage `mirror`)
    Mirror,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// Striped TIFF
    Tiff,
    /// PNG
    Png,
    /// Baseline JPEG (8-bit gray or RGB)
    Jpeg,
}

/// TIFF compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompressionArg {
    /// Uncompressed
    None,
    /// Deflate with the horizontal predictor
    Deflate,
    /// LZW with the horizontal predictor
    Lzw,
    /// Zstandard (level 9, code 50000 as libtiff writes it) with the horizontal predictor
    Zstd,
}

/// `enhance` options.
#[derive(Debug, Args)]
pub struct Opts {
    #[command(flatten)]
    pub input: InputArgs,
    /// The default chain here (curve, gamma 0.9, brightness 1.03, contrast 1.05,
    /// autocontrast 1); it is also what runs when no step is given
    #[arg(long, action = ArgAction::Count, help_heading = "Steps (in the order given)")]
    pub default_chain: u8,
    /// The comic-reader S-curve
    #[arg(long, action = ArgAction::Count, help_heading = "Steps (in the order given)")]
    pub curve: u8,
    /// Gamma: max (v/max)^(1/G)
    #[arg(long, value_name = "G", value_parser = membudget::cli::positive_number,
          help_heading = "Steps (in the order given)")]
    pub gamma: Vec<f64>,
    /// Brightness factor (ImageEnhance.Brightness)
    #[arg(long, value_name = "F", value_parser = membudget::cli::number_in(0.0, 1e6),
          help_heading = "Steps (in the order given)")]
    pub brightness: Vec<f64>,
    /// Contrast factor around the greyscale mean (ImageEnhance.Contrast)
    #[arg(long, value_name = "F", value_parser = membudget::cli::number_in(0.0, 1e6),
          help_heading = "Steps (in the order given)")]
    pub contrast: Vec<f64>,
    /// Autocontrast, CUTOFF percent of samples cut at each end (ImageOps.autocontrast)
    #[arg(long, value_name = "CUTOFF", value_parser = membudget::cli::number_in(0.0, 49.9),
          help_heading = "Steps (in the order given)")]
    pub autocontrast: Vec<f64>,
    /// Levels: BLACK..WHITE (sample values) stretched to the full range, then gamma
    #[arg(long, value_name = "BLACK,WHITE[,GAMMA]", value_parser = parse_levels,
          help_heading = "Steps (in the order given)")]
    pub levels: Vec<(f64, f64, f64)>,
    /// Unsharp mask: Gaussian SIGMA, AMOUNT (1 = 100%), THRESHOLD in levels (default 0)
    #[arg(long, value_name = "SIGMA,AMOUNT[,THRESHOLD]", value_parser = parse_unsharp,
          help_heading = "Steps (in the order given)")]
    pub unsharp: Vec<(f64, f64, f64)>,
    /// Gaussian blur of SIGMA pixels
    #[arg(long, value_name = "SIGMA", value_parser = parse_sigma,
          help_heading = "Steps (in the order given)")]
    pub blur: Vec<f64>,
    /// Median of the (2R+1)^2 square
    #[arg(long, value_name = "R", value_parser = clap::value_parser!(u32).range(1..=50),
          help_heading = "Steps (in the order given)")]
    pub median: Vec<u32>,
    /// Lanczos3 resize: WxH (fit inside; --fill: cover and crop) or P%
    #[arg(long, value_name = "WxH|P%", value_parser = parse_resize,
          help_heading = "Steps (in the order given)")]
    pub resize: Vec<Size>,
    /// Shrink images of more than N pixels to at most N (Lanczos3)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..),
          help_heading = "Steps (in the order given)")]
    pub max_pixels: Vec<u64>,
    /// --resize WxH covers the box and crops the centre instead of fitting inside
    #[arg(long)]
    pub fill: bool,
    /// Rows and columns outside the image for neighbourhood steps
    #[arg(long, value_enum, default_value_t = EdgeArg::Replicate)]
    pub edge: EdgeArg,
    /// Output format (default: the input's)
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// JPEG quality (1-100)
    #[arg(long, value_name = "Q", default_value_t = 90,
          value_parser = clap::value_parser!(u8).range(1..=100))]
    pub quality: u8,
    /// TIFF compression (default: the input's when written here, else deflate)
    #[arg(long, value_enum)]
    pub compression: Option<CompressionArg>,
    /// Write a tiled TIFF, tiles of W x H (multiples of 16), instead of strips
    #[arg(long, value_name = "WxH", value_parser = parse_tile)]
    pub tile: Option<(u32, u32)>,
    /// Rows per band (default: planned from the memory budget)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub band_rows: Option<u32>,
    #[command(flatten)]
    pub processing: ProcessingArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

fn parse_sigma(s: &str) -> Result<f64, String> {
    let v = membudget::cli::positive_number(s)?;
    if v > 200.0 {
        return Err("sigma above 200 is not supported".into());
    }
    Ok(v)
}

fn numbers(s: &str, min: usize, max: usize) -> Result<Vec<f64>, String> {
    let v: Vec<f64> = s
        .split(',')
        .map(|p| {
            p.trim()
                .parse::<f64>()
                .map_err(|_| format!("{p:?} is not a number"))
        })
        .collect::<Result<_, _>>()?;
    if v.len() < min || v.len() > max || v.iter().any(|x| !x.is_finite()) {
        return Err(format!("{s:?}: {min} to {max} comma-separated numbers"));
    }
    Ok(v)
}

fn parse_levels(s: &str) -> Result<(f64, f64, f64), String> {
    let v = numbers(s, 2, 3)?;
    let g = v.get(2).copied().unwrap_or(1.0);
    if v[0] < 0.0 || v[1] <= v[0] || v[1] > 65535.0 || g <= 0.0 {
        return Err(format!("{s:?}: 0 <= BLACK < WHITE <= 65535, GAMMA above 0"));
    }
    Ok((v[0], v[1], g))
}

fn parse_unsharp(s: &str) -> Result<(f64, f64, f64), String> {
    let v = numbers(s, 2, 3)?;
    let t = v.get(2).copied().unwrap_or(0.0);
    if v[0] <= 0.0 || v[0] > 200.0 || v[1] < 0.0 || t < 0.0 {
        return Err(format!(
            "{s:?}: SIGMA in (0, 200], AMOUNT and THRESHOLD at least 0"
        ));
    }
    Ok((v[0], v[1], t))
}

fn parse_tile(s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("{s:?}: WxH, both multiples of 16 from 16 to 65536");
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    let w: u32 = w.trim().parse().map_err(|_| bad())?;
    let h: u32 = h.trim().parse().map_err(|_| bad())?;
    let ok = |v: u32| (16..=65536).contains(&v) && v.is_multiple_of(16);
    if !ok(w) || !ok(h) {
        return Err(bad());
    }
    Ok((w, h))
}

fn parse_resize(s: &str) -> Result<Size, String> {
    let bad = || format!("{s:?} is not WxH or P%");
    if let Some(p) = s.strip_suffix('%') {
        let p: f64 = p.trim().parse().map_err(|_| bad())?;
        if !(p.is_finite() && p > 0.0 && p <= 1000.0) {
            return Err(format!("{s:?}: a percentage above 0, at most 1000"));
        }
        return Ok(Size::Percent(p));
    }
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    let w: u32 = w.trim().parse().map_err(|_| bad())?;
    let h: u32 = h.trim().parse().map_err(|_| bad())?;
    if w == 0 || h == 0 || w > 1 << 20 || h > 1 << 20 {
        return Err(format!("{s:?}: sides from 1 to 1048576"));
    }
    Ok(Size::Box(w, h))
}

/// The steps in command-line order (clap gives each option's values and indices).
pub fn steps(o: &Opts, m: Option<&ArgMatches>) -> Vec<Step> {
    let mut at: Vec<(usize, Vec<Step>)> = Vec::new();
    let idx = |id: &str| -> Vec<usize> {
        m.and_then(|m| m.indices_of(id))
            .map(|i| i.collect())
            .unwrap_or_default()
    };
    let mut add = |id: &str, v: Vec<Vec<Step>>| {
        let i = idx(id);
        for (k, s) in v.into_iter().enumerate() {
            at.push((i.get(k).copied().unwrap_or(usize::MAX), s));
        }
    };
    add(
        "default_chain",
        vec![Step::default_chain(); usize::from(o.default_chain)],
    );
    add("curve", vec![vec![Step::Curve]; usize::from(o.curve)]);
    add(
        "gamma",
        o.gamma.iter().map(|&g| vec![Step::Gamma(g)]).collect(),
    );
    add(
        "brightness",
        o.brightness
            .iter()
            .map(|&g| vec![Step::Brightness(g)])
            .collect(),
    );
    add(
        "contrast",
        o.contrast
            .iter()
            .map(|&g| vec![Step::Contrast(g)])
            .collect(),
    );
    add(
        "autocontrast",
        o.autocontrast
            .iter()
            .map(|&g| vec![Step::AutoContrast(g)])
            .collect(),
    );
    add(
        "levels",
        o.levels
            .iter()
            .map(|&(b, w, g)| vec![Step::Levels(b, w, g)])
            .collect(),
    );
    add(
        "unsharp",
        o.unsharp
            .iter()
            .map(|&(s, a, t)| vec![Step::Unsharp(s, a, t)])
            .collect(),
    );
    add(
        "blur",
        o.blur.iter().map(|&s| vec![Step::Blur(s)]).collect(),
    );
    add(
        "median",
        o.median.iter().map(|&r| vec![Step::Median(r)]).collect(),
    );
    add(
        "resize",
        o.resize
            .iter()
            .map(|&s| vec![Step::Resize(s, o.fill)])
            .collect(),
    );
    add(
        "max_pixels",
        o.max_pixels
            .iter()
            .map(|&n| vec![Step::MaxPixels(n)])
            .collect(),
    );
    at.sort_by_key(|(i, _)| *i);
    let v: Vec<Step> = at.into_iter().flat_map(|(_, s)| s).collect();
    if v.is_empty() {
        Step::default_chain()
    } else {
        v
    }
}

struct Ctx<'a> {
    o: &'a Opts,
    steps: Vec<Step>,
    edge: Edge,
}

/// Run `enhance`.
pub fn run(o: &Opts, m: Option<&ArgMatches>, log: &LogArgs) -> Result<Status> {
    let processing = o.processing.resolve()?;
    let steps = steps(o, m);
    if o.fill && o.resize.is_empty() {
        return Err(membudget::cli::usage("--fill goes with --resize WxH"));
    }
    let edge = match o.edge {
        EdgeArg::Replicate => Edge::Replicate,
        EdgeArg::Mirror => Edge::Mirror,
    };
    let ctx = Ctx { o, steps, edge };
    // Several images at once when there are several, each planning its bands and
    // threads with its share of the budget (within chunk-plan's, without --memory-limit).
    let least = |path: &Path| ctx.least(path);
    processing.for_each_record(crate::NAME, &o.input, log, least, |r, job, room| {
        ctx.process(r, job, room)
    })
}

/// The cost model's summary of a PNG of geometry `g` (read row by row).
fn png_summary(g: raster::Geometry) -> Summary {
    Summary {
        format: Format::Png,
        bytes: 0,
        image: Some(membudget::probe::ImageSummary {
            width: u64::from(g.width),
            height: u64::from(g.height),
            bands: g.comps as u32,
            bits: 8 * g.sample_bytes as u32,
            sample_format: membudget::probe::SampleFormat::Uint,
            pages: 1,
            layout: membudget::probe::Layout::Strips,
            block: [u64::from(g.width), 1],
            compressed: true,
        }),
        points: None,
        archive: None,
        document: None,
    }
}

/// The input as the chain reads it.
enum Input {
    Tiff {
        offset: u64,
    },
    Png,
    /// Read by scanlines at full size; a progressive JPEG's coefficients up to
    /// `max_coefficients` bytes.
    Jpeg {
        probe: Box<Probe>,
        max_coefficients: u64,
    },
}

fn open_source<'a>(path: &'a Path, input: &Input) -> Result<Box<dyn RowSource + 'a>, Error> {
    let buffered = || -> Result<_, Error> { Ok(BufReader::new(std::fs::File::open(path)?)) };
    Ok(match input {
        Input::Tiff { offset } => Box::new(TiffPage::open_at(path, 0, *offset)?),
        Input::Png => Box::new(PngSource::new(buffered()?)?),
        Input::Jpeg {
            probe,
            max_coefficients,
        } => Box::new(JpegRows::open(buffered()?, probe, 1, *max_coefficients)?),
    })
}

impl Ctx<'_> {
    /// The least an input needs, for the batch driver: the chain's model on its
    /// smallest band and one thread, from the header (a TIFF's first page, a PNG);
    /// `None` for another file. A tiled TIFF's row of tiles is not counted.
    fn least(&self, path: &Path) -> Option<u64> {
        let mut head = [0u8; 16];
        let n = std::fs::File::open(path).ok()?.read(&mut head).ok()?;
        let (g, summary) = match membudget::probe::sniff(&head[..n])? {
            Format::Tiff => {
                let page = TiffPage::open(path, 0).ok()?;
                (page.geometry(), page.info.summary())
            }
            Format::Png => {
                let src = PngSource::new(BufReader::new(std::fs::File::open(path).ok()?)).ok()?;
                (src.geometry(), png_summary(src.geometry()))
            }
            _ => return None,
        };
        // Halos do not depend on which components are colour.
        let shape = Shape { g, colour: g.comps };
        let (_, halo_sum, stages) = chain::neighbourhood(&self.steps, shape, self.edge);
        let model = TiledFilter::tile_enhance(u64::from(halo_sum), u64::from(stages));
        Some(membudget::cost::estimate(&model, &summary)?.min_bytes)
    }

    fn process(&self, r: &mut Record, job: &mut Job, room: Room) -> Result<(), Error> {
        let path = r.path();
        let sec = |r: &mut Record, k: &str, v: serde_json::Value| r.set_in(crate::NAME, k, v);
        let mut head = [0u8; 16];
        let n = std::fs::File::open(&path)?.read(&mut head)?;
        let format = membudget::probe::sniff(&head[..n]);
        // Open once for the header: geometry, metadata, the cost model's summary.
        let (input, meta, summary, in_compression) = match format {
            Some(Format::Tiff) => {
                let offsets = raster::tiff::page_offsets(&path)?;
                let page = TiffPage::open_at(&path, 0, offsets[0])?;
                let info = &page.info;
                if info.prec != 8 && info.prec != 16 {
                    return Err(Error::unsupported(format!(
                        "{}-bit samples: enhance processes 8- and 16-bit images",
                        info.prec
                    )));
                }
                if offsets.len() > 1 {
                    sec(
                        r,
                        "note",
                        json!(format!("first of {} pages", offsets.len())),
                    );
                }
                let compression = Compression::from_code(info.compression_code());
                let meta = Meta {
                    colour: info.colour,
                    extra: info.extra,
                    bits: info.prec,
                    icc: info.icc.clone(),
                    resolution: info.resolution,
                };
                (
                    Input::Tiff { offset: offsets[0] },
                    meta,
                    info.summary(),
                    compression,
                )
            }
            Some(Format::Png) => {
                let src = PngSource::new(BufReader::new(std::fs::File::open(&path)?))?;
                let meta = src.meta().clone();
                (Input::Png, meta, png_summary(src.geometry()), None)
            }
            Some(Format::Jpeg) => {
                let probe = membudget::probe::raster::probe_jpeg(&path)?;
                if let Detail::Jpeg(j) = &probe.detail {
                    if j.bits != 8 {
                        return Err(Error::unsupported(format!(
                            "{}-bit JPEG: enhance reads 8-bit JPEG",
                            j.bits
                        )));
                    }
                }
                let summary = Summary::from_probe(&probe);
                // A progressive JPEG's coefficients are held whole: up to the budget.
                let max_coefficients = room.budget;
                let file = BufReader::new(std::fs::File::open(&path)?);
                let meta = JpegRows::open(file, &probe, 1, max_coefficients)?.meta();
                let input = Input::Jpeg {
                    probe: Box::new(probe),
                    max_coefficients,
                };
                (input, meta, summary, None)
            }
            Some(f) => {
                return Err(Error::unsupported(format!(
                    "{} input: enhance reads TIFF, PNG and JPEG",
                    f.as_str()
                )))
            }
            None => return Err(Error::unsupported("not a TIFF, PNG or JPEG file")),
        };
        let out_format = self.o.format.unwrap_or(match input {
            Input::Tiff { .. } => FormatArg::Tiff,
            Input::Png => FormatArg::Png,
            Input::Jpeg { .. } => FormatArg::Jpeg,
        });
        let compression = match self.o.compression {
            Some(CompressionArg::None) => Compression::None,
            Some(CompressionArg::Deflate) => Compression::Deflate,
            Some(CompressionArg::Lzw) => Compression::Lzw,
            Some(CompressionArg::Zstd) => Compression::Zstd,
            None => in_compression.unwrap_or(Compression::Deflate),
        };
        let ext = match out_format {
            FormatArg::Tiff => "tif",
            FormatArg::Png => "png",
            FormatArg::Jpeg => "jpg",
        };
        let mut name: OsString = path
            .file_stem()
            .unwrap_or(std::ffi::OsStr::new("out"))
            .to_os_string();
        if self.o.output.output_dir.is_none() {
            name.push("_enhanced");
        }
        name.push(format!(".{ext}"));
        let dest = self.o.output.output_path(&path, &name)?;
        r.set_path_in(crate::NAME, "output", &dest);
        sec(r, "format", json!(ext));
        job.claim_output(&path, &dest)?;
        let exists = "output exists (use --force to overwrite)";
        if dest.exists() && !self.o.output.force {
            sec(r, "status", json!("skipped"));
            sec(r, "reason", json!(exists));
            return Ok(());
        }
        let g_in = open_source(&path, &input)?.geometry();
        if out_format == FormatArg::Jpeg {
            // JPEG holds 8-bit gray or RGB: converting silently would lose what the user
            // has (depth, transparency); say so and name the formats that hold it.
            let alpha = g_in.comps > meta.colour_comps();
            if g_in.sample_bytes != 1 || alpha {
                let what = match (g_in.sample_bytes != 1, alpha) {
                    (true, true) => "16-bit samples and alpha",
                    (true, false) => "16-bit samples",
                    _ => "alpha",
                };
                return Err(Error::unsupported(format!(
                    "JPEG output cannot hold this image's {what} (JPEG is 8-bit gray or \
                     RGB): use --format tiff or png"
                )));
            }
        }
        let shape = Shape {
            g: g_in,
            colour: meta.colour_comps().min(g_in.comps),
        };
        sec(
            r,
            "steps",
            json!(self.steps.iter().map(Step::describe).collect::<Vec<_>>()),
        );
        // Memory plan: the band height and threads.
        let (_, halo_sum, stages) = chain::neighbourhood(&self.steps, shape, self.edge);
        let model = TiledFilter::tile_enhance(u64::from(halo_sum), u64::from(stages));
        let jobs = u32::try_from(room.threads).unwrap_or(u32::MAX);
        // What the writer holds beyond the model's: a tiled TIFF's row of tiles, raw and
        // compressed, or libjpeg's MCU row (counted at the input's width: resizing here
        // mostly shrinks).
        let writer_hold = match (out_format, self.o.tile) {
            (FormatArg::Tiff, Some((tw, th))) => {
                let px = (g_in.comps * g_in.sample_bytes) as u64;
                2 * u64::from(th) * u64::from(g_in.width.div_ceil(tw) * tw) * px
            }
            // libjpeg's MCU row of samples.
            (FormatArg::Jpeg, _) => JpegWriter::<std::fs::File>::held_bytes(g_in.width, g_in.comps),
            _ => 0,
        };
        let (band_rows, threads, predicted) = match self.o.band_rows {
            Some(b) => {
                let b = b.min(g_in.height.max(1));
                let p = model.peak_bytes(&summary, u64::from(b), jobs);
                (b, jobs, p.saturating_add(writer_hold))
            }
            None => {
                // Taller bands than the efficient height buy no speed, only memory:
                // without a budget given, plan for that height on every thread.
                let budget = if room.explicit {
                    room.budget
                } else {
                    let eff = model.efficient_chunk(&summary);
                    let peak = model.peak_bytes(&summary, eff, jobs);
                    room.budget.min(peak.saturating_add(writer_hold))
                };
                let budget = membudget::Budget::bytes(budget.saturating_sub(writer_hold));
                let p = plan::plan(&model, &summary, budget, jobs)?;
                (
                    p.chunk as u32,
                    p.workers,
                    p.predicted_peak_bytes.saturating_add(writer_hold),
                )
            }
        };
        sec(r, "band_rows", json!(band_rows));
        sec(r, "halo", json!(halo_sum));
        sec(r, "threads", json!(threads));
        sec(r, "predicted_peak_rss", json!(predicted));
        sec(r, "budget_bytes", json!(room.budget));
        if self.o.output.dry_run {
            sec(r, "status", json!("dry_run"));
            return Ok(());
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1) as usize)
            .build()
            .map_err(|e| Error::new(ErrorKind::Internal, format!("thread pool: {e}")))?;
        let pool = std::sync::Arc::new(pool);
        let mut file = match AtomicFile::claim(&dest)? {
            Ok(f) => f,
            Err(busy) => {
                sec(r, "status", json!("skipped"));
                sec(r, "reason", json!(busy));
                return Ok(());
            }
        };
        if dest.exists() && !self.o.output.force {
            sec(r, "status", json!("skipped"));
            sec(r, "reason", json!(exists));
            return Ok(());
        }
        let out_file = file.file().try_clone()?;
        let (steps, edge) = (&self.steps, self.edge);
        // Each pass decodes the input on the read-ahead helper while the chain runs.
        let open = |f: &mut dyn FnMut(&mut (dyn RowSource + Send)) -> Result<(), Error>| {
            raster::ahead::with_read_ahead(g_in, || open_source(&path, &input), |a| f(a))
        };
        let plan = pool.install(|| chain::plan(steps, shape, &open, band_rows, edge))?;
        let g = plan.out;
        // The TIFF writer interleaves and compresses on the pool (its batch of strips
        // sized by the pool's threads) and writes on this thread.
        let tile = self.o.tile;
        let mut sink = (|| -> Result<Box<dyn RowSink + Send>, Error> {
            Ok(match out_format {
                FormatArg::Tiff => {
                    let w =
                        TiffWriter::new(DirectWriter::new(out_file), g, meta.clone(), compression)?
                            .in_pool(pool.clone());
                    match tile {
                        Some((tw, th)) => Box::new(w.tiled(tw, th)?),
                        None => Box::new(w),
                    }
                }
                FormatArg::Png => Box::new(PngWriter::new(DirectWriter::new(out_file), g, &meta)?),
                FormatArg::Jpeg => Box::new(JpegWriter::new(
                    DirectWriter::new(out_file),
                    g.width,
                    g.height,
                    g.comps,
                    self.o.quality,
                    meta.icc.as_deref(),
                    meta.resolution.map(|r| (r.x_ppm(), r.y_ppm())),
                )?),
            })
        })()?;
        // The pass that writes: the chain computes the next band on the read-ahead
        // helper while this thread encodes and writes the one before (write-behind):
        // the chain's parallel work and the TIFF writer's go to the same pool; the
        // writes themselves, and the PNG and JPEG encoders (one thread each), run here,
        // beside the pool.
        let (pool, plan) = (&*pool, &plan);
        open(&mut |src| {
            read_ahead_with(
                vec![Band::default(); 2],
                || -> Result<_, Error> {
                    let mut chain = plan.source(src, band_rows, edge);
                    let mut y = 0;
                    Ok(move |b: &mut Band| -> Result<bool, Error> {
                        if y >= g.height {
                            return Ok(false);
                        }
                        let rows = band_rows.min(g.height - y);
                        pool.install(|| chain.read_band(y, rows, b))?;
                        y += rows;
                        Ok(true)
                    })
                },
                |filled| -> Result<(), Error> {
                    for band in filled {
                        let band = band?;
                        sink.write_band(&band)?;
                        if membudget::cli::interrupted() {
                            return Err(Error::new(ErrorKind::Io, "interrupted by a signal"));
                        }
                    }
                    Ok(())
                },
            )
            .map_err(|e| Error::new(ErrorKind::Io, format!("starting the chain's thread: {e}")))?
        })?;
        sink.finish()?;
        let out_g = g;
        if out_format == FormatArg::Jpeg {
            sec(r, "quality", json!(self.o.quality));
        }
        if out_format == FormatArg::Tiff {
            sec(r, "compression", json!(compression.as_str()));
            if let Some((tw, th)) = self.o.tile {
                sec(r, "tiff_tile", json!([tw, th]));
            }
        }
        sec(r, "width", json!(out_g.width));
        sec(r, "height", json!(out_g.height));
        sec(r, "statistics", json!(plan.stats));
        sec(r, "passes", json!(plan.passes));
        file.commit()?;
        sec(r, "status", json!("ok"));
        Ok(())
    }
}
