//! `laz-enrich`: per-point geometric features (eigenvalue features, normals, density) of
//! LiDAR clouds of any size, in bounded memory, exact across tile borders.
//!
//! The pipeline is in [`enrich`]; the features and their formulas in [`features`]; the
//! neighbour search in [`neighbours`]; the spatial tiles in [`tiling`]; the LAS header
//! handling in [`las_io`]. Memory comes from `membudget`: the budget, the cost model
//! `membudget::cost::laz_features` and the planner.

pub mod cache;
pub mod eigen;
pub mod enrich;
pub mod features;
pub mod ground;
pub mod las_io;
pub mod neighbours;
pub mod pointfiles;
pub mod tiling;

use anyhow::Result;
use clap::{ArgMatches, Args, Command, FromArgMatches};
use features::{Feature, Names, Orientation};
use membudget::budget::human_bytes;
use membudget::cli::{AtomicFile, BudgetArgs, InputArgs, LogArgs, OutputArgs, Status};
use membudget::cost::laz_features::LazFeatures;
use membudget::cost::Summary;
use membudget::outputs::Destinations;
use membudget::probe::{Format, PointsSummary};
use membudget::system::SystemInfo;
use membudget::{driver, Error, ErrorKind, Record};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The tool's name, as in records and messages.
pub const NAME: &str = "laz-enrich";

/// Tiles never hold more points than this unless `--tile-points` says so: larger tiles
/// are no faster (the halo costs 1-2 % at this size) and only use more memory.
pub const EFFICIENT_TILE_POINTS: u64 = 1 << 20;

/// Output container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutFormat {
    /// LASzip-compressed LAS
    Laz,
    /// Uncompressed LAS
    Las,
}

/// The command line.
#[derive(Debug, Args)]
pub struct Opts {
    #[command(flatten)]
    input: InputArgs,
    /// Neighbourhood radius in metres: neighbours are the points at distance <= R, the
    /// point itself included
    #[arg(short = 'R', long, value_name = "METRES", default_value_t = 1.0)]
    radius: f64,
    /// Neighbourhoods of the K nearest points (3D, the point itself included; ties
    /// broken by coordinates) instead of a radius; exact across tiles: a point whose K
    /// nearest may lie beyond its tile's halo is computed again with a wider one
    #[arg(short = 'k', long = "k", value_name = "K", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    knn: Option<u32>,
    /// Features to compute, comma-separated, or `all` (see FEATURES below)
    #[arg(short = 'F', long, value_name = "LIST", value_parser = parse_features)]
    features: Option<FeatureList>,
    /// Names of the new dimensions
    #[arg(long, value_enum, default_value_t = Names::Jakteristics)]
    names: Names,
    /// Orient normals towards this point (X,Y,Z in the file's coordinates) instead of up
    #[arg(long, value_name = "X,Y,Z", value_parser = parse_viewpoint)]
    viewpoint: Option<[f64; 3]>,
    /// Take halo points from the LAS/LAZ files in this directory (adjacent tiles), so
    /// features at this file's borders equal those of the merged cloud
    #[arg(long, value_name = "DIR", alias = "neighbors")]
    neighbours: Option<PathBuf>,
    /// Height above ground looks for the nearest ground point (class 2) in XY within
    /// this many metres (the halo grows to it); beyond, the height is NaN
    #[arg(long, value_name = "METRES", default_value_t = 10.0)]
    ground_radius: f64,
    /// Output container
    #[arg(long, value_enum, default_value_t = OutFormat::Laz)]
    format: OutFormat,
    /// Appended to the input's stem to name the output: a name part (no `/`, no `..`);
    /// an output that would be the input itself is refused
    #[arg(long, value_name = "TEXT", default_value = ".enriched", value_parser = parse_suffix)]
    suffix: String,
    /// Directory for temporary files (about 12 + 4 x features bytes a point); default:
    /// the output's directory
    #[arg(long, value_name = "DIR")]
    temp_dir: Option<PathBuf>,
    /// Most points (owned plus halo) a tile may hold, below what the budget allows
    /// (default: the budget's capacity, at most 1048576)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    tile_points: Option<u64>,
    #[command(flatten)]
    budget: BudgetArgs,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    log: LogArgs,
}

/// A parsed `--features` list (a newtype so clap sees one value, not many).
#[derive(Debug, Clone)]
pub struct FeatureList(pub Vec<Feature>);

fn parse_features(s: &str) -> Result<FeatureList, String> {
    features::parse_list(s).map(FeatureList)
}

/// A suffix is part of a file name: a separator or `..` would put the output elsewhere
/// (`--suffix /../../x` escaped --output-dir).
fn parse_suffix(s: &str) -> Result<String, String> {
    if s.contains('/') || s.contains('\0') || s.contains("..") {
        return Err(format!(
            "{s:?}: a suffix is part of a file name (no '/', no '..')"
        ));
    }
    Ok(s.to_string())
}

fn parse_viewpoint(s: &str) -> Result<[f64; 3], String> {
    let v: Vec<f64> = s
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("viewpoint: {e}"))?;
    match v.as_slice() {
        [x, y, z] if v.iter().all(|c| c.is_finite()) => Ok([*x, *y, *z]),
        _ => Err("viewpoint must be three finite numbers X,Y,Z".into()),
    }
}

fn features_help() -> String {
    let mut s = String::from(
        "FEATURES (eigenvalues l1 >= l2 >= l3 of the neighbourhood's sample covariance, \
         centred on its mean, divided by n - 1; NaN where undefined):\n",
    );
    for f in Feature::ALL {
        let ign = f.dimension_name(Names::Ign);
        let alias = if ign != f.name() {
            format!(" (IGN: {ign})")
        } else {
            String::new()
        };
        s.push_str(&format!("  {:<20} {}{}\n", f.name(), f.formula(), alias));
    }
    let defaults: Vec<&str> = Feature::DEFAULT.iter().map(|f| f.name()).collect();
    s.push_str(&format!("Default: {}\n", defaults.join(",")));
    s
}

/// The clap command (used by `main`, man pages and completions).
pub fn command() -> Command {
    // Arguments first: clap takes a struct doc comment as `about`, and ours must win.
    Opts::augment_args(Command::new(NAME))
        .version(env!("CARGO_PKG_VERSION"))
        .about("Add per-point geometric features to LAS/LAZ clouds of any size, in bounded memory")
        .long_about(
            "Reads paths or NDJSON manifest records (arguments, `-` or stdin), computes for \
                 every point the features of its neighbourhood (the points within R metres, or \
                 with -k its K nearest) and writes a copy of the cloud with one new float32 \
                 dimension per feature (LAS 1.4 extra bytes, all described in one Extra Bytes \
                 VLR). Every input point, dimension, VLR and the CRS are kept, in the original \
                 order. The cloud is cut into spatial tiles whose points plus a halo fit the \
                 memory budget; the halo covers R (and the ground radius for height above \
                 ground, 2 m for num_points_2m), and kNN points whose K nearest may lie beyond \
                 it are computed again with a wider one, so results are exact at tile borders \
                 and identical (bit for bit) whatever the budget. With --neighbours, halo \
                 points also come from adjacent files. Directories with --recursive: their \
                 .las/.laz files are the inputs, mirrored under --output-dir, and sidecar files \
                 (<name>.json, <name>.txt) are copied beside the outputs. One record per input \
                 on stdout with a `laz-enrich` section (output, status, points, tiles, \
                 peak_rss, predicted_peak, seconds).",
        )
        .after_long_help(features_help() + membudget::outputs::OUTPUTS_HELP)
}

/// Run on parsed arguments.
pub fn run(m: &ArgMatches) -> Result<Status> {
    let opts = Opts::from_arg_matches(m)?;
    if !(opts.radius.is_finite() && opts.radius > 0.0) {
        anyhow::bail!("--radius must be a positive number of metres");
    }
    if !(opts.ground_radius.is_finite() && opts.ground_radius > 0.0) {
        anyhow::bail!("--ground-radius must be a positive number of metres");
    }
    let sys = SystemInfo::probe();
    let budget = opts.budget.budget(&sys)?;
    let jobs = opts.budget.jobs(&sys);
    if sys.heavy_swap() {
        log::warn!("more than half the swap is in use: expect it to be slow (one thread unless -j says otherwise)");
    }
    let neighbours = match &opts.neighbours {
        Some(dir) => list_clouds(dir)?,
        None => Vec::new(),
    };
    let mut dests = Destinations::new();
    driver::for_each_record(NAME, &opts.input, &opts.log, |r, job| {
        let path = r.path();
        // Directory trees hold sidecars and other files: with --recursive only the
        // clouds are inputs (a file named explicitly is always one).
        if opts.input.recursive && !is_cloud_name(&path) {
            job.discard();
            return Ok(());
        }
        // Without --memory-limit, the budget chunk-plan planned this record for.
        let budget = opts.budget.planned(r).unwrap_or(budget);
        // The threads that run: what the budget holds, at most --jobs (the model counts
        // them). The whole input runs in their pool: a pool built later, beside
        // allocations made on this thread, measured 5 MiB more.
        let threads = threads_for(&path, budget.bytes, jobs);
        let run = Run {
            budget: budget.bytes,
            threads,
            neighbours: &neighbours,
        };
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads as usize)
            .build()
            .map_err(|e| Error::new(ErrorKind::Internal, format!("threads: {e}")))?
            .install(|| one(&opts, &path, &run, &mut dests, r))
    })
}

/// Whether a file name ends in `.las` or `.laz`.
fn is_cloud_name(p: &Path) -> bool {
    p.extension()
        .is_some_and(|x| x.eq_ignore_ascii_case("las") || x.eq_ignore_ascii_case("laz"))
}

/// The LAS/LAZ files of a directory (not recursive), sorted.
fn list_clouds(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("--neighbours {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && is_cloud_name(p))
        .collect();
    v.sort();
    Ok(v)
}

/// Copy the input's sidecar files (`<stem>.json`, `<stem>.txt`, `<name>.json`... beside
/// it: metadata that belongs with the cloud) to the mirrored output directory, when that
/// is another directory. Existing copies are kept unless `force`. Returns the copies.
fn copy_sidecars(out: &OutputArgs, input: &Path, force: bool) -> Result<Vec<String>, Error> {
    let Some(dir) = input.parent() else {
        return Ok(Vec::new());
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let (Some(stem), Some(name)) = (input.file_stem(), input.file_name()) else {
        return Ok(Vec::new());
    };
    // Compared as bytes: a name that is not UTF-8 finds its sidecars too.
    let dotted = |s: &OsStr| [s.as_bytes(), b"."].concat();
    let (stem, name) = (dotted(stem), dotted(name));
    let mut copied = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(copied);
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let f = p.file_name().map(OsStr::as_bytes).unwrap_or_default();
            let ext_ok = p
                .extension()
                .is_some_and(|x| x.eq_ignore_ascii_case("json") || x.eq_ignore_ascii_case("txt"));
            ext_ok && p.is_file() && (f.starts_with(&stem) || f.starts_with(&name))
        })
        .collect();
    found.sort();
    for src in found {
        let Some(file) = src.file_name() else {
            continue;
        };
        let dest = out.output_path(input, file)?;
        let same = match (src.canonicalize(), dest.parent().map(Path::canonicalize)) {
            (Ok(a), Some(Ok(d))) => a.parent() == Some(d.as_path()),
            _ => false,
        };
        if same || (dest.exists() && !force) {
            continue;
        }
        let mut atomic = AtomicFile::create(&dest)?;
        std::io::copy(&mut std::fs::File::open(&src)?, atomic.file())?;
        atomic.commit()?;
        copied.push(dest.to_string_lossy().into_owned());
    }
    Ok(copied)
}

/// Threads for `input` within `budget`, at most `jobs`: the model's
/// [`LazFeatures::threads_within`] for the cloud's point count (the thread overhead does
/// not depend on the features); one when the header cannot be read (the error record
/// comes from processing it).
fn threads_for(input: &Path, budget: u64, jobs: usize) -> u64 {
    let count = membudget::probe::las::probe(input)
        .ok()
        .and_then(|p| p.points)
        .map_or(0, |p| p.count);
    LazFeatures::default().threads_within(budget, count, jobs as u64)
}

/// The output file name for `input`: its stem (without `.copc`) plus the suffix. The
/// stem's bytes are kept: a name that is not UTF-8 stays the same name.
fn output_name(input: &Path, suffix: &str, format: OutFormat) -> OsString {
    let stem = input.file_stem().unwrap_or(OsStr::new("cloud")).as_bytes();
    let stem = stem.strip_suffix(b".copc").unwrap_or(stem);
    let ext = match format {
        OutFormat::Laz => "laz",
        OutFormat::Las => "las",
    };
    let mut name = OsStr::from_bytes(stem).to_os_string();
    name.push(format!("{suffix}.{ext}"));
    name
}

/// What one input is processed with.
struct Run<'a> {
    budget: u64,
    /// Threads that run ([`threads_for`]).
    threads: u64,
    neighbours: &'a [PathBuf],
}

/// Process one input, filling the record's section.
fn one(
    opts: &Opts,
    input: &Path,
    run: &Run<'_>,
    dests: &mut Destinations,
    r: &mut Record,
) -> Result<(), Error> {
    let (budget, neighbours) = (run.budget, run.neighbours);
    let dest = opts
        .output
        .output_path(input, output_name(input, &opts.suffix, opts.format))?;
    // Never over an input of the run (`--suffix ''`), never the output of an earlier one.
    dests.check(input, &dest)?;
    let features = opts
        .features
        .clone()
        .map(|l| l.0)
        .unwrap_or_else(|| Feature::DEFAULT.to_vec());
    // Every size the las/laz readers would trust is checked first (the bounded header
    // probe: a damaged header is named as such, not left to the reader's seeks).
    let info = las_io::validate(input)?;
    las_io::check_header_budget(input, &info, run.budget)?;
    let header = las_io::open_with(input, false)?.header().clone();
    let hag = features.contains(&Feature::HeightAboveGround);
    let within_2m = features.contains(&Feature::PointsWithin2m);
    // The first halo: the radius, or for kNN twice the radius of a disc holding k points
    // at the cloud's mean density (points beyond it are computed again, exactly).
    let neighbourhood_reach = match opts.knn {
        Some(k) => {
            let b = header.bounds();
            let area = ((b.max.x - b.min.x) * (b.max.y - b.min.y)).abs();
            let n = header.number_of_points().max(1) as f64;
            let density = if area.is_finite() && area > 0.0 {
                n / area
            } else {
                1.0
            };
            (2.0 * (f64::from(k) / (std::f64::consts::PI * density)).sqrt()).clamp(0.05, 1000.0)
        }
        None => opts.radius,
    };
    let base = LazFeatures::default();
    let count = header.number_of_points();
    let model = LazFeatures {
        radius: neighbourhood_reach
            .max(if hag { opts.ground_radius } else { 0.0 })
            .max(if within_2m { 2.0 } else { 0.0 }),
        features: features.len() as u64,
        // Height above ground also holds the pass's ground points (a growing buffer, up
        // to 24 bytes a point) and their grid (a copy and about two cell offsets, 28):
        // at most every point.
        // The 2 m count needs a second column grid: a copy and its offsets, 24.
        bytes_per_point: base.bytes_per_point
            + if hag { 52 } else { 0 }
            + if within_2m { 24 } else { 0 },
        ..base
    };
    let threads = run.threads;
    let model = LazFeatures { threads, ..model };
    let b = header.bounds();
    let summary = Summary {
        format: if header.point_format().is_compressed {
            Format::Laz
        } else {
            Format::Las
        },
        bytes: std::fs::metadata(input)?.len(),
        image: None,
        points: Some(PointsSummary {
            count: header.number_of_points(),
            record_bytes: u32::from(header.point_format().len()),
            bounds: [b.min.x, b.min.y, b.min.z, b.max.x, b.max.y, b.max.z],
            compressed: header.point_format().is_compressed,
        }),
        archive: None,
        document: None,
    };
    let plan = membudget::plan::plan(&model, &summary, membudget::Budget::bytes(budget), 1)?;
    if let Ok(v) = serde_json::to_value(&plan) {
        r.set_in("plan", NAME, v);
    }
    let rec_in = u64::from(header.point_format().len());
    let capacity = model
        .capacity(budget, count, rec_in)
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Budget,
                format!(
                    "the budget {} is below the {} needed to decode and encode one LAZ chunk",
                    human_bytes(budget),
                    human_bytes(model.predicted_peak(count, rec_in, 0, 0))
                ),
            )
        })?
        .min(opts.tile_points.unwrap_or(EFFICIENT_TILE_POINTS))
        .min(u64::from(u32::MAX));
    // Records decoded or encoded at once: one LAZ chunk per thread when the budget
    // allows (whole chunks keep the parallel codec busy), fewer when it does not.
    let slab = model.slab_points(budget, count, rec_in, threads);
    r.set_path_in(NAME, "output", &dest);
    let skip = |r: &mut Record, reason: &str| {
        r.set_in(NAME, "status", "skipped");
        r.set_in(NAME, "reason", reason);
    };
    let exists = "output exists (use --force to overwrite)";
    if dest.exists() && !opts.output.force {
        skip(r, exists);
        return Ok(());
    }
    if opts.output.dry_run {
        r.set_in(NAME, "status", "dry_run");
        return Ok(());
    }
    let names = opts.names;
    let params = enrich::Params {
        radius: neighbourhood_reach,
        dims: features
            .iter()
            .map(|f| {
                (
                    f.dimension_name(names).to_string(),
                    f.formula().chars().take(32).collect(),
                )
            })
            .collect(),
        features: features.clone(),
        orientation: match opts.viewpoint {
            Some(v) => Orientation::Towards(v),
            None => Orientation::Up,
        },
        compress: opts.format == OutFormat::Laz,
        capacity,
        slab,
        parallel_codec: slab >= membudget::cost::laz_features::LAZ_CHUNK_POINTS,
        temp_dir: opts.temp_dir.clone().unwrap_or_else(|| {
            dest.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."))
        }),
        neighbours: neighbours.to_vec(),
        ground_radius: hag.then_some(opts.ground_radius),
        knn: opts.knn.map(|k| k as usize),
        within_2m,
    };
    let mut atomic = match AtomicFile::claim(&dest)? {
        Ok(a) => a,
        Err(busy) => {
            skip(r, &busy);
            return Ok(());
        }
    };
    // Another run may have finished it meanwhile.
    if dest.exists() && !opts.output.force {
        skip(r, exists);
        return Ok(());
    }
    let report = enrich::enrich(input, atomic.file(), &params)?;
    atomic.commit()?;
    let sidecars = copy_sidecars(&opts.output, input, opts.output.force)?;
    if !sidecars.is_empty() {
        r.set_in(NAME, "sidecars", sidecars);
    }
    r.set_in(NAME, "status", "ok");
    r.set_in(NAME, "points", report.points);
    match opts.knn {
        Some(k) => {
            r.set_in(NAME, "k", k);
            r.set_in(NAME, "knn_halo_m", neighbourhood_reach);
            r.set_in(NAME, "knn_retried", report.knn_retried);
        }
        None => r.set_in(NAME, "radius", opts.radius),
    }
    r.set_in(
        NAME,
        "features",
        params
            .dims
            .iter()
            .map(|(n, _)| n.clone())
            .collect::<Vec<_>>(),
    );
    r.set_in(NAME, "budget_bytes", budget);
    r.set_in(NAME, "threads", threads);
    r.set_in(NAME, "tile_capacity", capacity);
    r.set_in(NAME, "tiles", report.tiles);
    r.set_in(NAME, "passes", report.passes);
    r.set_in(NAME, "max_tile_points", report.max_tile_points);
    r.set_in(NAME, "max_pass_points", report.max_pass_points);
    r.set_in(NAME, "slab_points", slab);
    r.set_in(
        NAME,
        "predicted_peak",
        model.predicted_peak(count, rec_in, report.max_pass_points, slab),
    );
    r.set_in(NAME, "halo_points", report.halo_points);
    if report.legacy_returns {
        // Same version and bits as the input; only its five per-return counters omit
        // returns 6 and 7, as those versions' headers do.
        r.set_in(NAME, "returns_above_5", true);
    }
    if !params.neighbours.is_empty() {
        r.set_in(NAME, "neighbour_files", report.neighbour_files);
        r.set_in(NAME, "neighbour_points", report.foreign_points);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_is_valid() {
        super::command().debug_assert();
    }

    #[test]
    fn output_names() {
        assert_eq!(
            output_name(Path::new("a/b.copc.laz"), ".enriched", OutFormat::Laz),
            "b.enriched.laz"
        );
        assert_eq!(output_name(Path::new("x.las"), "", OutFormat::Las), "x.las");
        // A name that is not UTF-8 keeps its bytes.
        let latin1 = Path::new(OsStr::from_bytes(b"d/t\xe9.copc.laz"));
        assert_eq!(
            output_name(latin1, ".enriched", OutFormat::Laz).as_bytes(),
            b"t\xe9.enriched.laz"
        );
    }

    #[test]
    fn suffixes_are_name_parts() {
        assert_eq!(parse_suffix(".v2").unwrap(), ".v2");
        assert_eq!(parse_suffix("").unwrap(), "");
        for bad in ["/../../../escaped", "a/b", "..", "x..y"] {
            assert!(parse_suffix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn viewpoints_parse() {
        assert_eq!(parse_viewpoint("1,2.5,-3").unwrap(), [1.0, 2.5, -3.0]);
        assert!(parse_viewpoint("1,2").is_err());
        assert!(parse_viewpoint("1,2,nan").is_err());
    }
}
