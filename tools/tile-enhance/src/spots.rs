//! `spots`: spot and star detection by a scale-normalised Laplacian of Gaussian, tile by
//! tile with a halo, exact at tile borders, with a multi-channel readout.
//!
//! The image is read by bands of rows ([`raster::Window`]); each band is cut into square
//! tiles (cores cover the image exactly once, half-open), and each tile's response is
//! computed over its core plus `min_distance` around it, from input pixels up to the kernel
//! radius beyond that (the halo, `ceil(4 sigma_max) + min_distance`). A detection belongs
//! to the tile whose core holds it. Responses and the local-maximum test are computed the
//! same way wherever a pixel lies, so the spots equal the whole-image spots, in the same
//! order. The automatic threshold ([`threshold`]) comes from histograms gathered over every
//! tile in a first pass.

mod log;
mod pool;
mod source;
mod threshold;

use anyhow::Result;
use clap::Args;
use log::{reflect, Scale, Scratch, Stack};
use membudget::cli::{self, AtomicFile, InputArgs, LogArgs, OutputArgs, Status};
use membudget::cost::raster_filters::{self, TiledFilter};
use membudget::cost::{CostModel, Summary};
use membudget::driver::{Job, ProcessingArgs, Room};
use membudget::{Error, ErrorKind, Record};
use raster::{Edge, RowSource, Window};
use serde_json::json;
use source::{Channel, Src};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// The record section (and the name in messages).
pub const SECTION: &str = "spots";

/// `--help` text.
pub const LONG_ABOUT: &str = "Detect spots (smFISH, spatial transcriptomics) or stars with a \
scale-normalised Laplacian of Gaussian, -sigma^2 LoG(image) (scipy.ndimage's kernels, \
truncated at 4 sigma, scipy's `reflect` edge rule), on images larger than memory. A spot is a \
pixel whose response is above the threshold and is the largest within --min-distance D (a \
(2D+1) square, and the neighbouring scales with a --sigma range); among equal responses the \
first in (y, x, scale) order wins, so a plateau gives one spot. The image is processed in \
square tiles with a halo of ceil(4 sigma_max) + D pixels; a spot belongs to the tile whose \
core holds it, so the result equals the whole-image result, same spots, same order, whatever \
the budget.\n\n\
Threshold: --threshold T on the response, or by default big-fish's elbow method \
(automated_threshold_setting): a first pass gathers histograms of the un-normalised response \
rounded to sample units (as big-fish casts it back to the image's integer type) over the \
whole image and over its local maxima, and the threshold is the elbow of log(number of maxima \
above t) against t (with a --sigma range: every scale's response over the smallest \
sigma^2). The record says which was used (`threshold`, `threshold_method`, and \
`threshold_bigfish` in big-fish's units: threshold / sigma^2). That first pass also keeps \
its strongest local maxima (up to a twelfth of the budget): when they include every one \
above the threshold, the second pass only reads the channels out (nothing at all when the \
detection image, of 8 or 16-bit or 32-bit float samples, is the only channel, read by pixel: \
the first pass kept the values), else it detects again (`detect_passes` 1 or 2 in the \
record; the spots are the same).\n\n\
Channels: the bands and pages of the input are channels c0, c1, ... (page after page, band \
after band); --channel NAME=PATH adds the first band of another file of the same size. \
Spots are detected on --detect-on (default c0) and every channel is read at each spot: the \
pixel, or with --readout mean:R / max:R the mean or maximum over the pixels of the image \
within distance R (a disc, clipped at the image's edges), band by band, never whole \
channels.\n\n\
Output: <stem>.spots.csv under -o DIR (default beside the input) with the header \
y,x[,y_sub,x_sub],sigma,response,<channels>, sorted by (y, x). --subpixel adds y_sub and \
x_sub from a 3-point Gaussian fit of the response per axis (the log of the three values is \
fitted by a parabola; a quadratic fit of the values themselves where one is not positive; \
no shift at the image's edge). One record per input with a `spots` section (output, status, \
count, threshold, sigma, tiles, peak_rss, seconds).\n\n\
Samples: 8 and 16-bit TIFF (gray, RGB, any bands, pages), PNG and JPEG (8-bit), FITS (any \
BITPIX, physical values). Float and signed TIFF samples are refused by the TIFF reader with \
an `unsupported` error record; for float images scaled to 0..1 the automatic threshold (in \
sample units) finds nothing: give --threshold.";

/// `spots` options.
#[derive(Debug, Args)]
pub struct Opts {
    #[command(flatten)]
    pub input: InputArgs,
    /// The detector's options (boxed: the subcommand enum stays small).
    #[command(flatten)]
    pub det: Box<DetectArgs>,
    #[command(flatten)]
    pub processing: ProcessingArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// The detector's options.
#[derive(Debug, Args)]
pub struct DetectArgs {
    /// Gaussian sigma in pixels, or a range START:STOP:COUNT (COUNT sigmas evenly spaced,
    /// ends included, as blob_log's min_sigma, max_sigma, num_sigma) for a multi-scale
    /// search; each spot's scale is reported
    #[arg(short = 's', long, value_name = "SIGMA", value_parser = parse_sigmas,
          conflicts_with_all = ["spot_radius", "fwhm"])]
    pub sigma: Option<Sigmas>,
    /// Spot radius (with --pixel-size, in the same unit): sigma = min distance = R / P
    /// pixels, as big-fish derives them (the distance truncated to whole pixels)
    #[arg(long, value_name = "R", requires = "pixel_size", value_parser = cli::positive_number)]
    pub spot_radius: Option<f64>,
    /// Pixel size, in the unit of --spot-radius
    #[arg(long, value_name = "P", requires = "spot_radius", value_parser = cli::positive_number)]
    pub pixel_size: Option<f64>,
    /// Star full width at half maximum in pixels: sigma = F / 2.3548
    #[arg(long, value_name = "F", value_parser = cli::positive_number, conflicts_with = "spot_radius")]
    pub fwhm: Option<f64>,
    /// Local maxima within this many pixels (Chebyshev) are merged (default ceil(sigma),
    /// the largest sigma of a range)
    #[arg(short = 'd', long, value_name = "D", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub min_distance: Option<u32>,
    /// Keep maxima whose response is above T (default: big-fish's elbow method)
    #[arg(short = 't', long, value_name = "T", allow_negative_numbers = true, value_parser = finite)]
    pub threshold: Option<f64>,
    /// Add y_sub, x_sub columns: a 3-point Gaussian fit of the response per axis
    #[arg(long)]
    pub subpixel: bool,
    /// Another channel to read out (and maybe detect on): NAME=PATH, repeated
    #[arg(long = "channel", value_name = "NAME=PATH", value_parser = parse_channel)]
    pub channels: Vec<(String, PathBuf)>,
    /// The channel spots are detected on
    #[arg(long, value_name = "NAME", default_value = "c0")]
    pub detect_on: String,
    /// What is read from each channel at a spot: `pixel`, `mean:R` or `max:R` (a disc of
    /// radius R pixels)
    #[arg(long, value_name = "HOW", default_value = "pixel", value_parser = parse_readout)]
    pub readout: Readout,
    /// Tile side in pixels, below what the budget allows (for tests and tuning)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub tile: Option<u32>,
    /// Maxima the first pass keeps at most (for tests: a small pool forces the second
    /// detection pass)
    #[arg(long, value_name = "N", hide = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub pool: Option<u64>,
}

/// Sigmas of the search.
#[derive(Debug, Clone)]
pub struct Sigmas(pub Vec<f64>);

fn parse_sigmas(s: &str) -> Result<Sigmas, String> {
    let num = |t: &str| -> Result<f64, String> {
        cli::positive_number(t).and_then(|v| {
            if v <= 1000.0 {
                Ok(v)
            } else {
                Err("a sigma must be at most 1000".into())
            }
        })
    };
    let parts: Vec<&str> = s.split(':').collect();
    match parts.as_slice() {
        [one] => Ok(Sigmas(vec![num(one)?])),
        [a, b, n] => {
            let (a, b) = (num(a)?, num(b)?);
            let n: usize = n
                .trim()
                .parse()
                .map_err(|_| format!("{n:?}: COUNT must be a whole number"))?;
            if !(1..=64).contains(&n) || b < a {
                return Err("a range is START:STOP:COUNT with STOP >= START, COUNT 1 to 64".into());
            }
            // numpy.linspace(a, b, n)
            let step = if n > 1 { (b - a) / (n - 1) as f64 } else { 0.0 };
            Ok(Sigmas((0..n).map(|i| a + step * i as f64).collect()))
        }
        _ => Err("SIGMA or START:STOP:COUNT".into()),
    }
}

fn finite(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!("{s:?} is not a finite number")),
    }
}

fn parse_channel(s: &str) -> Result<(String, PathBuf), String> {
    let (name, path) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected NAME=PATH"))?;
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !ok || path.is_empty() {
        return Err(format!(
            "{s:?}: NAME is letters, digits, _ - . and PATH is not empty"
        ));
    }
    Ok((name.to_string(), PathBuf::from(path)))
}

/// What is read from each channel at a spot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Readout {
    /// The pixel's value.
    Pixel,
    /// The mean over a disc of this radius.
    Mean(u32),
    /// The maximum over a disc of this radius.
    Max(u32),
}

impl Readout {
    fn radius(self) -> u32 {
        match self {
            Readout::Pixel => 0,
            Readout::Mean(r) | Readout::Max(r) => r,
        }
    }
}

fn parse_readout(s: &str) -> Result<Readout, String> {
    let bad = || format!("{s:?}: expected pixel, mean:R or max:R (R whole pixels, 0 to 1000)");
    if s == "pixel" {
        return Ok(Readout::Pixel);
    }
    let (how, r) = s.split_once(':').ok_or_else(bad)?;
    let r: u32 = r.trim().parse().map_err(|_| bad())?;
    if r > 1000 {
        return Err(bad());
    }
    match how {
        "mean" => Ok(Readout::Mean(r)),
        "max" => Ok(Readout::Max(r)),
        _ => Err(bad()),
    }
}

/// The detector's parameters, resolved from the options.
#[derive(Debug, Clone)]
pub struct Params {
    /// Sigmas, ascending.
    pub sigmas: Vec<f64>,
    /// Min distance D.
    pub min_distance: u32,
    /// Halo: ceil(4 sigma_max) + D.
    pub halo: u32,
}

impl Params {
    /// From the options; a usage error when no sigma is given.
    pub fn from_opts(o: &DetectArgs) -> Result<Params> {
        let (sigmas, derived_d) = if let Some(s) = &o.sigma {
            (s.0.clone(), None)
        } else if let (Some(r), Some(p)) = (o.spot_radius, o.pixel_size) {
            let px = r / p;
            // big-fish: minimum_distance = radius in pixels, truncated by int().
            (vec![px], Some((px as u32).max(1)))
        } else if let Some(f) = o.fwhm {
            (vec![f / 2.3548], None)
        } else {
            return Err(cli::usage(
                "give the spot size: --sigma S, --spot-radius R --pixel-size P, or --fwhm F",
            ));
        };
        if sigmas
            .iter()
            .any(|&s| !(s.is_finite() && s > 0.0 && s <= 1000.0))
        {
            return Err(cli::usage("sigma must be above 0 and at most 1000 pixels"));
        }
        let smax = sigmas.iter().cloned().fold(0.0, f64::max);
        let min_distance = o
            .min_distance
            .or(derived_d)
            .unwrap_or((smax.ceil() as u32).max(1));
        let halo = (4.0 * smax).ceil() as u32 + min_distance;
        Ok(Params {
            sigmas,
            min_distance,
            halo,
        })
    }

    /// The cost model for these parameters, reading `channels` more row sources with a
    /// halo of `readout` rows.
    pub fn model(&self, channels: u64, readout: u32) -> TiledFilter {
        let smax = self.sigmas.iter().cloned().fold(0.0, f64::max);
        TiledFilter {
            readout_halo: u64::from(readout),
            ..TiledFilter::spot_detect_for(
                smax,
                u64::from(self.min_distance),
                self.sigmas.len() as u64,
                channels,
            )
        }
    }
}

/// Run `spots`.
pub fn run(o: &Opts, log: &LogArgs) -> Result<Status> {
    let params = Params::from_opts(&o.det)?;
    let mut names: Vec<&str> = Vec::new();
    for (n, _) in &o.det.channels {
        if names.contains(&n.as_str()) || is_input_channel_name(n) {
            return Err(cli::usage(format!(
                "--channel {n}: the name is taken (c0, c1, ... are the input's)"
            )));
        }
        names.push(n);
    }
    if !is_input_channel_name(&o.det.detect_on) && !names.contains(&o.det.detect_on.as_str()) {
        return Err(cli::usage(format!(
            "--detect-on {}: no such channel (c0, c1, ... or a --channel name)",
            o.det.detect_on
        )));
    }
    let processing = o.processing.resolve()?;
    // Several images at once when there are several, each planning its tiles and
    // workers with its share of the budget. The least need: the model's smallest tile on
    // one worker, the --channel files read beside the image.
    let least = |path: &Path| {
        let summary = Summary::from_probe(&membudget::probe::probe_path(path).ok()?);
        let model = params.model(o.det.channels.len() as u64, o.det.readout.radius());
        Some(membudget::cost::estimate(&model, &summary)?.min_bytes)
    };
    processing.for_each_record(SECTION, &o.input, log, least, |r, job, room| {
        let path = r.path();
        one(o, &params, &path, room, job, r)
    })
}

fn is_input_channel_name(n: &str) -> bool {
    n.strip_prefix('c')
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

/// One detected spot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spot {
    /// Row.
    pub y: u32,
    /// Column.
    pub x: u32,
    /// Index of its scale (at most 64 scales).
    pub scale: u16,
    /// Response.
    pub response: f32,
    /// Sub-pixel shifts (0 without --subpixel).
    pub dy: f32,
    /// Column shift.
    pub dx: f32,
    /// The detection image's sample there (as f32: exact for 8 and 16-bit and f32
    /// samples), its pixel readout when it is the only channel.
    pub value: f32,
}

/// The per-input routine.
fn one(
    o: &Opts,
    p: &Params,
    input: &Path,
    room: Room,
    job: &mut Job,
    r: &mut Record,
) -> Result<(), Error> {
    let (budget, jobs) = (room.budget, room.threads);
    let dest = o.output.output_path(
        input,
        membudget::cli::stem_name(input, "image", ".spots.csv"),
    )?;
    job.claim_output(input, &dest)?;
    // Channels: the input's pages and bands, then --channel files.
    let format = source::format_of(input)?;
    let mut channels = Vec::new();
    let pages = source::pages(input, format)?;
    for page in 0..pages {
        let g = source::open(input, format, page)?.geometry();
        for comp in 0..g.comps {
            channels.push(Channel {
                name: format!("c{}", channels.len()),
                path: input.to_path_buf(),
                page,
                comp,
            });
        }
    }
    let inputs = channels.len();
    for (name, path) in &o.det.channels {
        channels.push(Channel {
            name: name.clone(),
            path: path.clone(),
            page: 0,
            comp: 0,
        });
    }
    let detect = channels
        .iter()
        .position(|c| c.name == o.det.detect_on)
        .ok_or_else(|| {
            Error::new(
                ErrorKind::BadRecord,
                format!(
                    "--detect-on {}: the input has channels c0 to c{}",
                    o.det.detect_on,
                    inputs.max(1) - 1
                ),
            )
        })?;
    // The sources: one window per (file, page), each channel a component of one.
    let mut keys: Vec<(PathBuf, usize)> = Vec::new();
    let mut chan_src = Vec::new();
    for c in &channels {
        let k = (c.path.clone(), c.page);
        let i = keys.iter().position(|x| *x == k).unwrap_or_else(|| {
            keys.push(k);
            keys.len() - 1
        });
        chan_src.push(i);
    }
    let det_src = chan_src[detect];
    let det_path = channels[detect].path.clone();
    let det_format = source::format_of(&det_path)?;
    let g = source::open(&det_path, det_format, channels[detect].page)?.geometry();
    // Every channel must have the detection image's size (checked before any work).
    let mut src_sb = Vec::new();
    for (path, page) in &keys {
        let f = source::format_of(path)?;
        let cg = source::open(path, f, *page)?.geometry();
        src_sb.push(cg.sample_bytes);
        if (cg.width, cg.height) != (g.width, g.height) {
            return Err(Error::new(
                ErrorKind::BadRecord,
                format!(
                    "channel file {} is {}x{}, the detection image {}x{}",
                    path.display(),
                    cg.width,
                    cg.height,
                    g.width,
                    g.height
                ),
            ));
        }
    }
    // The first pass's pool of maxima (automatic threshold): up to a twelfth of the budget
    // (it holds twice its cap), and no more than the image can have (maxima are more than
    // D apart).
    let (pool_cap, pool_expect) = if o.det.threshold.is_none() {
        let cap = o
            .det
            .pool
            .unwrap_or((budget / 24 / pool::BYTES_PER_SPOT).clamp(4096, 1 << 19));
        let most = u64::from(g.width) * u64::from(g.height) * p.sigmas.len() as u64
            / (u64::from(p.min_distance) + 1).pow(2)
            + 1;
        (cap, cap.min(most))
    } else {
        (0, 0)
    };
    // The plan: tile side and workers from the budget and the cost model.
    let mut model = p.model(keys.len() as u64 - 1, o.det.readout.radius());
    // The first pass (and its read-ahead) runs for the automatic threshold only.
    model.read_ahead = o.det.threshold.is_none();
    model.fixed += 2 * pool_expect * pool::BYTES_PER_SPOT;
    let summary = match membudget::probe::probe_path(&det_path) {
        Ok(pr) => Summary::from_probe(&pr),
        Err(e) => return Err(e),
    };
    let (mut tile, workers, predicted) = if summary.image.is_some() && model.applies(&summary) {
        let plan = membudget::plan::plan(
            &model,
            &summary,
            membudget::Budget::bytes(budget),
            jobs as u32,
        )?;
        (
            plan.chunk as u32,
            plan.workers.max(1),
            plan.predicted_peak_bytes,
        )
    } else {
        (1024, 1, 0)
    };
    if let Some(t) = o.det.tile {
        tile = tile.min(t);
    }
    let tile = tile.clamp(1, g.width.max(g.height).max(1));
    let predicted = if o.det.tile.is_some() && summary.image.is_some() {
        model.peak_bytes(&summary, u64::from(tile), workers)
    } else {
        predicted
    };
    if o.output.dry_run {
        r.set_in(SECTION, "status", "dry_run");
        r.set_path_in(SECTION, "output", &dest);
        return Ok(());
    }
    if dest.exists() && !o.output.force {
        r.set_in(SECTION, "status", "skipped");
        r.set_path_in(SECTION, "output", &dest);
        return Ok(());
    }
    let scales: Vec<Scale> = p.sigmas.iter().map(|&s| Scale::new(s)).collect();
    let det = Detector {
        scales: &scales,
        d: i64::from(p.min_distance),
        height: i64::from(g.height),
        width: i64::from(g.width),
        comp: channels[detect].comp,
        sample_bytes: g.sample_bytes,
        tile: tile as usize,
        workers: workers as usize,
        subpixel: o.det.subpixel,
        planes: (0..workers.max(1)).map(|_| Mutex::default()).collect(),
    };
    let open_src = |k: &(PathBuf, usize)| -> Result<Src, Error> {
        source::open(&k.0, source::format_of(&k.0)?, k.1)
    };
    // Pass 1 (automatic threshold): histograms over every tile, and the strongest maxima.
    let s_ref = (p.sigmas[0] * p.sigmas[0]) as f32;
    let mut known: Option<Vec<Spot>> = None;
    let (threshold, method, in_units) = match o.det.threshold {
        Some(t) => (Some(t as f32), "given", t / f64::from(s_ref)),
        None => {
            let mut h = threshold::Histograms::default();
            let pool = pool::Pool::new(pool_cap as usize, pool_expect as usize);
            // The image is decoded a band ahead on the read-ahead helper while the workers
            // compute on the current band.
            let det_key = &keys[det_src];
            raster::ahead::with_read_ahead_buffers(
                g,
                raster_filters::read_ahead_buffers(u64::from(tile)) as usize,
                || open_src(det_key),
                |a| {
                    let mut w = Window::new(a, tile, p.halo, Edge::Replicate);
                    while let Some(view) = w.next_band() {
                        let view = view?;
                        det.band(&view, Pass::Histogram(&mut h, &pool), None)?;
                        if cli::interrupted() {
                            return Err(Error::new(ErrorKind::Internal, "interrupted"));
                        }
                    }
                    Ok(())
                },
            )?;
            match h.elbow() {
                Some(u) => {
                    let t = (u * f64::from(s_ref)) as f32;
                    // The pool leaves out maxima whose u is 0 (r <= sigma^2 / 2): a
                    // threshold below sigma^2 detects again.
                    if t >= s_ref {
                        known = pool.above(t);
                    }
                    (Some(t), "bigfish-elbow", u)
                }
                None => (None, "bigfish-elbow", f64::NAN),
            }
        }
    };
    // Pass 2: detection and readout, band by band, written as they come.
    let mut out = AtomicFile::create(&dest)?;
    let mut csv = std::io::BufWriter::with_capacity(1 << 16, out.file().try_clone()?);
    let mut header = String::from("y,x");
    if o.det.subpixel {
        header.push_str(",y_sub,x_sub");
    }
    header.push_str(",sigma,response");
    for c in &channels {
        header.push(',');
        header.push_str(&c.name);
    }
    writeln!(csv, "{header}")?;
    let rr = o.det.readout.radius();
    // With the spots known, and the detection image the only channel, read by pixel, the
    // first pass kept each spot's value: nothing is read again.
    let from_pass1 = known.is_some()
        && channels.len() == 1
        && o.det.readout == Readout::Pixel
        && g.sample_bytes <= 4;
    let mut windows: Vec<Window<Src>> = Vec::new();
    for (i, k) in keys.iter().enumerate().filter(|_| !from_pass1) {
        // With the spots known, the detection image is only read out too.
        let halo = if i == det_src && known.is_none() {
            p.halo.max(rr)
        } else {
            rr
        };
        windows.push(Window::new(open_src(k)?, tile, halo, Edge::Replicate));
    }
    let passes = if known.is_some() || o.det.threshold.is_some() {
        1
    } else {
        2
    };
    let mut known = known.map(|v| v.into_iter().peekable());
    let mut count: u64 = 0;
    let mut bands = 0u64;
    let n_windows = windows.len();
    if let Some(t) = threshold {
        let mut next_y = 0u32;
        loop {
            let mut views = Vec::with_capacity(windows.len());
            for w in windows.iter_mut() {
                match w.next_band() {
                    Some(v) => views.push(v?),
                    None => break,
                }
            }
            if views.len() < n_windows || next_y >= g.height {
                break;
            }
            let end = next_y.saturating_add(tile).min(g.height);
            next_y = end;
            bands += 1;
            let mut spots = Vec::new();
            match known.as_mut() {
                Some(k) => {
                    while let Some(s) = k.next_if(|s| s.y < end) {
                        spots.push(s);
                    }
                }
                None => det.band(&views[det_src], Pass::Detect(t), Some(&mut spots))?,
            }
            let mut line = String::new();
            for s in &spots {
                line.clear();
                use std::fmt::Write as _;
                let _ = write!(line, "{},{}", s.y, s.x);
                if o.det.subpixel {
                    let _ = write!(
                        line,
                        ",{:.3},{:.3}",
                        f64::from(s.y) + f64::from(s.dy),
                        f64::from(s.x) + f64::from(s.dx)
                    );
                }
                let _ = write!(
                    line,
                    ",{},{}",
                    sigma_text(p.sigmas[usize::from(s.scale)]),
                    s.response
                );
                if from_pass1 {
                    let _ = write!(line, ",{}", f64::from(s.value));
                }
                for (ci, c) in channels.iter().enumerate().filter(|_| !from_pass1) {
                    let v = readout(
                        &views[chan_src[ci]],
                        (c.comp, src_sb[chan_src[ci]]),
                        s,
                        o.det.readout,
                        &g,
                    );
                    let _ = write!(line, ",{v}");
                }
                writeln!(csv, "{line}")?;
            }
            count += spots.len() as u64;
            if cli::interrupted() {
                return Err(Error::new(ErrorKind::Internal, "interrupted"));
            }
        }
    }
    csv.flush()?;
    drop(csv);
    let written = out.commit()?;
    let tiles_across = u64::from(g.width.div_ceil(tile));
    let tiles_down = u64::from(g.height.div_ceil(tile));
    r.set_path_in(SECTION, "output", &written);
    r.set_in(SECTION, "status", "ok");
    r.set_in(SECTION, "count", count);
    r.set_in(SECTION, "threshold", threshold.map(f64::from));
    r.set_in(SECTION, "threshold_method", method);
    if in_units.is_finite() {
        r.set_in(SECTION, "threshold_bigfish", in_units);
    }
    if threshold.is_none() {
        r.set_in(
            SECTION,
            "note",
            "no local maximum rises above the background: no threshold, no spots",
        );
    }
    r.set_in(
        SECTION,
        "sigma",
        if p.sigmas.len() == 1 {
            json!(p.sigmas[0])
        } else {
            json!(p.sigmas)
        },
    );
    r.set_in(SECTION, "min_distance", p.min_distance);
    r.set_in(SECTION, "halo", p.halo);
    r.set_in(SECTION, "tile", json!([tile, tile]));
    r.set_in(SECTION, "tiles", tiles_across * tiles_down);
    r.set_in(SECTION, "bands", bands);
    r.set_in(SECTION, "detect_passes", passes);
    r.set_in(SECTION, "workers", workers);
    r.set_in(SECTION, "predicted_peak", predicted);
    r.set_in(SECTION, "detect_on", channels[detect].name.clone());
    r.set_in(
        SECTION,
        "channels",
        channels.iter().map(|c| c.name.clone()).collect::<Vec<_>>(),
    );
    Ok(())
}

/// Bins of the first pass's small per-tile histograms (see [`Detector::histogram`]).
const LOW_BINS: usize = 4096;

/// `acc[i] = max(acc[i], v[i])`, NaNs in `v` left out; a select the compiler turns into
/// vector max instructions.
#[inline(always)]
fn max_into(acc: &mut [f32], v: &[f32]) {
    for (m, &q) in acc.iter_mut().zip(v) {
        *m = if q > *m { q } else { *m };
    }
}

fn sigma_text(s: f64) -> String {
    let t = format!("{s:.4}");
    let t = t.trim_end_matches('0').trim_end_matches('.');
    t.to_string()
}

/// A channel's value at a spot, from the view of its band (which holds the rows within
/// the readout radius).
fn readout(
    view: &raster::window::View<'_>,
    (comp, sb): (usize, usize),
    s: &Spot,
    how: Readout,
    g: &raster::Geometry,
) -> f64 {
    let (y, x) = (i64::from(s.y), i64::from(s.x));
    let rel = |yy: i64| yy - i64::from(view.y0);
    if let Readout::Pixel = how {
        return source::sample(view.row(comp, rel(y)), sb, x as usize);
    }
    let r = i64::from(how.radius());
    let (h, w) = (i64::from(g.height), i64::from(g.width));
    let (mut sum, mut n, mut max) = (0.0f64, 0u64, f64::NEG_INFINITY);
    for yy in (y - r).max(0)..=(y + r).min(h - 1) {
        let row = view.row(comp, rel(yy));
        let dy = yy - y;
        for xx in (x - r).max(0)..=(x + r).min(w - 1) {
            let dx = xx - x;
            if dy * dy + dx * dx <= r * r {
                let v = source::sample(row, sb, xx as usize);
                sum += v;
                n += 1;
                max = max.max(v);
            }
        }
    }
    match how {
        Readout::Mean(_) => sum / n.max(1) as f64,
        _ => max,
    }
}

/// What a band's tiles are for.
enum Pass<'a> {
    /// Gather the automatic threshold's histograms, and the strongest maxima.
    Histogram(&'a mut threshold::Histograms, &'a pool::Pool),
    /// Detect spots above this response.
    Detect(f32),
}

/// The detector over one image.
struct Detector<'a> {
    scales: &'a [Scale],
    d: i64,
    height: i64,
    width: i64,
    comp: usize,
    sample_bytes: usize,
    tile: usize,
    workers: usize,
    subpixel: bool,
    /// Each worker's planes, kept from band to band (fresh ones would be zeroed by the
    /// kernel, page by page, every band).
    planes: Vec<Mutex<Planes>>,
}

/// One worker's planes.
#[derive(Debug, Default)]
struct Planes {
    scratch: Scratch,
    stack: Stack,
    /// Rows of the first pass's square maxima (a few rows of a tile).
    maxrows: Vec<f32>,
}

impl Detector<'_> {
    /// Process one band's tiles on the workers; detected spots are appended to `spots` in
    /// (y, x, scale) order.
    fn band(
        &self,
        view: &raster::window::View<'_>,
        pass: Pass<'_>,
        spots: Option<&mut Vec<Spot>>,
    ) -> Result<(), Error> {
        let across = (self.width as usize).div_ceil(self.tile);
        let next = AtomicUsize::new(0);
        let (threshold, pool) = match &pass {
            Pass::Detect(t) => (Some(*t), None),
            Pass::Histogram(_, pool) => (None, Some(*pool)),
        };
        let hist = Mutex::new(match pass {
            Pass::Histogram(h, _) => Some(h),
            Pass::Detect(_) => None,
        });
        let found: Mutex<Vec<(usize, Vec<Spot>)>> = Mutex::new(Vec::new());
        let work = |w: usize| {
            let mut planes = self.planes[w].lock().unwrap_or_else(|e| e.into_inner());
            let Planes {
                scratch,
                stack,
                maxrows,
            } = &mut *planes;
            let mut local = threshold.is_none().then(threshold::Histograms::default);
            loop {
                let t = next.fetch_add(1, Ordering::Relaxed);
                if t >= across {
                    break;
                }
                let x0 = (t * self.tile) as i64;
                let x1 = (x0 + self.tile as i64).min(self.width);
                self.responses(view, x0, x1, scratch, stack);
                let y0 = i64::from(view.y0);
                let y1 = y0 + i64::from(view.rows);
                match (&mut local, threshold) {
                    (Some(h), _) => {
                        if let Some(pool) = pool {
                            self.histogram(stack, (y0, y1), (x0, x1), h, pool, maxrows);
                        }
                    }
                    (None, Some(th)) => {
                        let v = self.maxima(stack, (y0, y1), (x0, x1), th);
                        found.lock().unwrap_or_else(|e| e.into_inner()).push((t, v));
                    }
                    _ => {}
                }
            }
            if let Some(l) = local {
                if let Some(h) = hist.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                    h.merge(&l);
                }
            }
        };
        let workers = self.workers.min(across).min(self.planes.len()).max(1);
        if workers == 1 {
            work(0);
        } else {
            std::thread::scope(|sc| {
                for w in 0..workers {
                    let work = &work;
                    sc.spawn(move || work(w));
                }
            });
        }
        if let Some(out) = spots {
            let mut tiles = found.into_inner().unwrap_or_else(|e| e.into_inner());
            let mut all: Vec<Spot> = tiles.drain(..).flat_map(|(_, v)| v).collect();
            all.sort_by_key(|s| (s.y, s.x, s.scale));
            out.extend(all);
        }
        Ok(())
    }

    /// The responses of every scale over the tile's core `x0..x1` (and the band's core
    /// rows) widened by D on each side, clipped to the image.
    fn responses(
        &self,
        view: &raster::window::View<'_>,
        x0: i64,
        x1: i64,
        scratch: &mut Scratch,
        stack: &mut Stack,
    ) {
        let d = self.d;
        let (vy0, vy1) = (i64::from(view.y0), i64::from(view.y0 + view.rows));
        let (ry0, ry1) = ((vy0 - d).max(0), (vy1 + d).min(self.height));
        let (rx0, rx1) = ((x0 - d).max(0), (x1 + d).min(self.width));
        let pad = self.scales.iter().map(|s| s.radius).max().unwrap_or(0) as i64;
        let sb = self.sample_bytes;
        // The input plane, edges by scipy's reflect rule.
        let input = &mut stack.input;
        input.clear();
        let (ia, ib) = (rx0 - pad, rx1 + pad);
        let (inner_a, inner_b) = (ia.max(0), ib.min(self.width));
        for yy in ry0 - pad..ry1 + pad {
            let sy = reflect(yy, self.height);
            let row = view.row(self.comp, sy - vy0);
            for xx in ia..inner_a.min(ib) {
                input.push(source::sample(row, sb, reflect(xx, self.width) as usize) as f32);
            }
            if inner_a < inner_b {
                source::convert(row, sb, inner_a as usize, inner_b as usize, input);
            }
            for xx in inner_b.max(ia)..ib {
                input.push(source::sample(row, sb, reflect(xx, self.width) as usize) as f32);
            }
        }
        let (rows, cols) = ((ry1 - ry0) as usize, (rx1 - rx0) as usize);
        stack.planes.resize_with(self.scales.len(), Vec::new);
        stack.y0 = ry0;
        stack.x0 = rx0;
        stack.rows = rows;
        stack.cols = cols;
        stack.pad = pad as usize;
        for (s, plane) in self.scales.iter().zip(stack.planes.iter_mut()) {
            log::response(s, &stack.input, pad as usize, rows, cols, scratch, plane);
        }
    }

    /// Add the core's pixels and local maxima to the histograms, and offer its strong
    /// maxima to the pool.
    ///
    /// Most pixels are not local maxima: a pixel is tested by [`Stack::is_max`] (ties,
    /// order) only when it equals the largest value of its square at its scales, found
    /// first for a whole row by separable maxima (the columns' maxima over the square's
    /// rows, then their maxima over the square's columns), branch-free and vectorised.
    /// Any local maximum equals that value, so no maximum is missed. NaN responses take
    /// no part in the maxima (a NaN pixel has bin 0 and is never tested).
    fn histogram(
        &self,
        st: &Stack,
        rows: (i64, i64),
        cols: (i64, i64),
        h: &mut threshold::Histograms,
        pool: &pool::Pool,
        maxrows: &mut Vec<f32>,
    ) {
        self.histogram_any(st, rows, cols, h, pool, maxrows);
    }

    #[inline(always)]
    fn histogram_any(
        &self,
        st: &Stack,
        (y0, y1): (i64, i64),
        (x0, x1): (i64, i64),
        h: &mut threshold::Histograms,
        pool: &pool::Pool,
        maxrows: &mut Vec<f32>,
    ) {
        let s2 = (self.scales[0].sigma * self.scales[0].sigma) as f32;
        let mut batch = Vec::with_capacity(pool::BATCH);
        let (a, n) = ((x0 - st.x0) as usize, (x1 - x0) as usize);
        let (cols, ns, d) = (st.cols, self.scales.len(), self.d);
        let mut bins = vec![0u32; n];
        // Per scale: its square maxima over the core row; then the column maxima.
        maxrows.clear();
        maxrows.resize(ns * n + cols, f32::NEG_INFINITY);
        let (sq, colmax) = maxrows.split_at_mut(ns * n);
        let mut best = vec![f32::NEG_INFINITY; n];
        let mut flags = vec![0u8; n];
        // u32 counts: a tile's core has fewer than 2^32 pixels.
        let mut low = vec![0u32; 4 * LOW_BINS];
        for y in y0..y1 {
            let (ya, yb) = ((y - d).max(0), (y + d).min(self.height - 1));
            for s in 0..ns {
                let plane = &st.planes[s];
                colmax.fill(f32::NEG_INFINITY);
                for yy in ya..=yb {
                    let row = &plane[(yy - st.y0) as usize * cols..][..cols];
                    max_into(colmax, row);
                }
                let m = &mut sq[s * n..(s + 1) * n];
                m.fill(f32::NEG_INFINITY);
                // Columns a + i + k of the region, clipped to it (it is clipped to the
                // image and holds the core's columns +- d within it).
                for k in -d..=d {
                    let start = a as i64 + k;
                    let lo = (-start).max(0) as usize;
                    let hi = ((cols as i64 - start).max(0) as usize).min(n);
                    if lo < hi {
                        max_into(&mut m[lo..hi], &colmax[(start + lo as i64) as usize..]);
                    }
                }
            }
            for s in 0..ns {
                let row = &st.planes[s][(y - st.y0) as usize * cols..][..cols];
                let core = &row[a..a + n];
                for (b, &r) in bins.iter_mut().zip(core) {
                    *b = threshold::bin(r, s2) as u32;
                }
                // Low bins (most pixels) by turns into four small histograms: equal
                // neighbours would otherwise wait on each other's increments.
                for (i, &b) in bins.iter().enumerate() {
                    if (b as usize) < LOW_BINS {
                        low[(i & 3) * LOW_BINS + b as usize] += 1;
                    } else {
                        h.all[b as usize] += 1;
                    }
                }
                best.copy_from_slice(&sq[s * n..(s + 1) * n]);
                if s > 0 {
                    max_into(&mut best, &sq[(s - 1) * n..s * n]);
                }
                if s + 1 < ns {
                    max_into(&mut best, &sq[(s + 1) * n..(s + 2) * n]);
                }
                for ((f, (&v, &m)), &b) in flags.iter_mut().zip(core.iter().zip(&best)).zip(&bins) {
                    *f = u8::from(v == m) & u8::from(b != 0);
                }
                // Candidates are few: skip 8 flags at a time.
                for (c, chunk) in flags.chunks(8).enumerate() {
                    if chunk.iter().all(|&f| f == 0) {
                        continue;
                    }
                    for (j, &f) in chunk.iter().enumerate() {
                        if f == 0 {
                            continue;
                        }
                        let i = c * 8 + j;
                        let x = x0 + i as i64;
                        // The largest of its square: a maximum unless an equal one
                        // comes first.
                        debug_assert!(
                            st.is_max(s, y, x, d, self.height, self.width)
                                == st.first_of_equals(s, y, x, d, self.width)
                        );
                        if !st.first_of_equals(s, y, x, d, self.width) {
                            continue;
                        }
                        h.maxima[bins[i] as usize] += 1;
                        let r = core[i];
                        if pool.wants(r) {
                            batch.push(self.spot(st, s, y, x));
                            if batch.len() == pool::BATCH {
                                pool.offer(&mut batch);
                            }
                        }
                    }
                }
            }
        }
        for (i, v) in h.all[..LOW_BINS].iter_mut().enumerate() {
            *v += (0..4)
                .map(|k| u64::from(low[k * LOW_BINS + i]))
                .sum::<u64>();
        }
        pool.offer(&mut batch);
    }

    /// The spot at a local maximum, with its sub-pixel shifts.
    fn spot(&self, st: &Stack, s: usize, y: i64, x: i64) -> Spot {
        let (dy, dx) = if self.subpixel {
            (
                self.shift(st, s, (y, x), (1, 0), self.height),
                self.shift(st, s, (y, x), (0, 1), self.width),
            )
        } else {
            (0.0, 0.0)
        };
        Spot {
            y: y as u32,
            x: x as u32,
            scale: s as u16,
            response: st.at(s, y, x),
            dy,
            dx,
            value: st.sample(y, x),
        }
    }

    fn maxima(&self, st: &Stack, (y0, y1): (i64, i64), (x0, x1): (i64, i64), t: f32) -> Vec<Spot> {
        let mut v = Vec::new();
        for y in y0..y1 {
            for s in 0..self.scales.len() {
                let plane = &st.planes[s];
                let row = &plane[(y - st.y0) as usize * st.cols..][..st.cols];
                for x in x0..x1 {
                    let r = row[(x - st.x0) as usize];
                    if r > t && st.is_max(s, y, x, self.d, self.height, self.width) {
                        v.push(self.spot(st, s, y, x));
                    }
                }
            }
        }
        v.sort_by_key(|s| (s.y, s.x, s.scale));
        v
    }

    /// The sub-pixel shift along one axis: a 3-point Gaussian fit (a parabola through the
    /// logs), a quadratic fit where a value is not positive, 0 at the image's edge.
    fn shift(&self, st: &Stack, s: usize, (y, x): (i64, i64), (sy, sx): (i64, i64), n: i64) -> f32 {
        let at = if sy == 1 { y } else { x };
        if at == 0 || at == n - 1 {
            return 0.0;
        }
        let a = f64::from(st.at(s, y - sy, x - sx));
        let b = f64::from(st.at(s, y, x));
        let c = f64::from(st.at(s, y + sy, x + sx));
        let (a2, b2, c2) = if a > 0.0 && b > 0.0 && c > 0.0 {
            (a.ln(), b.ln(), c.ln())
        } else {
            (a, b, c)
        };
        let den = a2 - 2.0 * b2 + c2;
        if den >= 0.0 || !den.is_finite() {
            return 0.0;
        }
        ((a2 - c2) / (2.0 * den)).clamp(-0.5, 0.5) as f32
    }
}
