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
use membudget::cli::{self, AtomicFile, InputArgs, OutputArgs, Status};
use membudget::cost::laz_features::{self, LazEnrichOptions, LazFeatures};
use membudget::cost::{CostModel, Summary};
use membudget::plan::{self, Planned};
use membudget::{driver, Error, ErrorKind, Record};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The tool's name, as in records and messages.
pub const NAME: &str = "laz-enrich";

pub use membudget::cost::laz_features::EFFICIENT_TILE_POINTS;

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
    /// The options that change the memory (radius, k, features, ground radius, tile
    /// points): chunk-plan takes them too.
    #[command(flatten)]
    plan: LazEnrichOptions,
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
    /// Output container
    #[arg(long, value_enum, default_value_t = OutFormat::Laz)]
    format: OutFormat,
    /// Appended to the input's stem to name the output: a name part (no `/`, no `..`);
    /// an output that would be the input itself is refused
    #[arg(long, value_name = "TEXT", default_value = ".enriched", value_parser = parse_suffix)]
    suffix: String,
    /// Directory for temporary files (the point records plus about 12 + 4 x features
    /// bytes a point; free space is checked first); default: $TMPDIR when set, else the
    /// output's directory
    #[arg(long, value_name = "DIR")]
    temp_dir: Option<PathBuf>,
    #[command(flatten)]
    common: driver::ToolArgs,
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

/// What happens to the input's VLRs and EVLRs, and why several Extra Bytes records
/// become one (see `las_io::output_header`).
const VLR_HELP: &str = "\nEXTRA BYTES AND VLRS. Every input VLR and EVLR is kept in its place, \
     byte for byte (header and payload), except the laszip and COPC records, which describe \
     the input's encoding. The new dimensions are float32 extra bytes after the input's, \
     described in one Extra Bytes VLR (LASF_Spec 4): the input's own, its descriptors kept \
     byte for byte, with one descriptor per feature appended (extra bytes that no descriptor \
     documents get a data type 0 descriptor first, so the offsets stay right). When the \
     input has several Extra Bytes records (VLRs or EVLRs, as files passed through two \
     programs may have), the first becomes that one VLR and holds every descriptor of \
     every record, byte for byte and in file order, then the new ones; the others stay in \
     their place, byte for byte but for the record ID, marked Superseded (LASF_Spec 7, \
     which readers skip). LAS 1.4 R15 describes the extra bytes with one Extra Bytes VLR \
     and LAS 1.5 says only one may exist; readers given several disagree (laspy uses the \
     first, LAStools the last, PDAL 2.9 all but counts each one's offsets from the start \
     again), while all of them read the output's one VLR alike. When the first Extra \
     Bytes record is an EVLR, the Extra Bytes VLR comes after the other VLRs. Internal \
     waveform data (LAS 1.4, global encoding bit 1) stays reachable: the header's start \
     of the waveform data packet record points at the output's copy of that EVLR, and \
     the points' waveform offsets, which count from it, are kept.\n";

fn features_help() -> String {
    let mut s = String::from(
        "FEATURES (eigenvalues l1 >= l2 >= l3 of the neighbourhood's sample covariance, \
         centred on its mean, divided by n - 1). NaN where undefined: every eigenvalue \
         feature with fewer than 2 neighbours; ratios over l1 or l1 + l2 + l3 when the \
         neighbours are all at one spot; the normal, verticality, horizontality and wall and \
         roof scores when the neighbours lie on one line (2 points included). Eigenentropy \
         takes 0 ln 0 = 0.\n",
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
    membudget::cli::tool_command::<Opts>(
        NAME,
        env!("CARGO_PKG_VERSION"),
        "Add per-point geometric features to LAS/LAZ clouds of any size, in bounded memory",
        "Reads paths or NDJSON manifest records (arguments, `-` or stdin), computes for \
                 every point the features of its neighbourhood (the points within R metres, or \
                 with -k its K nearest) and writes a copy of the cloud with one new float32 \
                 dimension per feature (LAS 1.4 extra bytes, all described in one Extra Bytes \
                 VLR). Every input point, dimension, VLR, EVLR and the CRS are kept, in the \
                 original order (see EXTRA BYTES AND VLRS). The cloud is cut into spatial tiles whose points plus a halo fit the \
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
    .after_long_help(features_help() + VLR_HELP + membudget::outputs::OUTPUTS_HELP)
}

/// Run on parsed arguments.
pub fn run(m: &ArgMatches) -> Result<Status> {
    let opts = Opts::from_arg_matches(m)?;
    // The list is parsed here, not by clap: the flag group is membudget's, shared with
    // chunk-plan, which knows no feature names. Still a usage error before any input.
    let features = match &opts.plan.features {
        Some(list) => {
            features::parse_list(list).map_err(|e| cli::usage(format!("--features: {e}")))?
        }
        None => Feature::DEFAULT.to_vec(),
    };
    let processing = opts.common.processing.resolve()?;
    let neighbours = match &opts.neighbours {
        Some(dir) => list_clouds(dir)?,
        None => Vec::new(),
    };
    // Several clouds at once when there are several (a directory of small tiles keeps
    // every core busy: one tile's passes reach about 1.6 cores), each planning its tile
    // and threads with its share of the budget; a single cloud runs as one at a time,
    // with all of it.
    let least = |p: &Path| {
        let s = Summary::from_probe(&membudget::probe::las::probe(p).ok()?);
        let model = LazFeatures::with_options(&opts.plan, &s);
        Some(membudget::cost::estimate(&model, &s)?.min_bytes)
    };
    processing.for_each_record(
        NAME,
        &opts.input,
        &opts.common.log,
        least,
        |r, job, room| {
            let path = r.path();
            // Directory trees hold sidecars and other files: with --recursive only the
            // clouds are inputs (a file named explicitly is always one).
            if opts.input.recursive && !is_cloud_name(&path) {
                job.discard();
                return Ok(());
            }
            // Never over an input of the run (`--suffix ''`), never the output of an earlier
            // one: claimed in input order, whichever cloud gets here first.
            let dest = opts
                .common
                .output
                .output_path(&path, output_name(&path, &opts.suffix, opts.format))?;
            job.claim_output(&path, &dest)?;
            // The room: without --memory-limit, the budget chunk-plan planned this record
            // for; the driver's share of it when clouds run side by side.
            // The threads that run: chunk-plan's when its plan holds, else what the budget
            // holds, at most the share's (the model counts them). The whole input runs in
            // their pool: a pool built later, beside allocations made on this thread,
            // measured 5 MiB more.
            let (planned, decided) = decide(&opts.plan, r, &path, room.budget, room.threads as u64);
            let threads = decided.as_ref().map_or(1, |d| d.run.threads);
            r.set_in(NAME, "plan", planned.describe());
            let run = Run {
                budget: room.budget,
                decided,
                features: &features,
                neighbours: &neighbours,
            };
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads as usize)
                .build()
                .map_err(|e| Error::new(ErrorKind::Internal, format!("threads: {e}")))?
                .install(|| one(&opts, &path, &dest, &run, r))
        },
    )
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

/// The run's model and geometry for one cloud.
struct Decided {
    model: LazFeatures,
    summary: Summary,
    run: laz_features::Run,
}

/// How `input` is run within `budget`, at most `jobs` threads: chunk-plan's plan in
/// `record` when it was made for these options and this budget (threads, tile and slab
/// points), else the model's own rule ([`LazFeatures::run`], the same chunk-plan uses).
/// The error (a header that does not probe, a budget too small) is the input's, reported
/// after the header checks of [`one`].
fn decide(
    options: &LazEnrichOptions,
    record: &Record,
    input: &Path,
    budget: u64,
    jobs: u64,
) -> (Planned, Result<Decided, Error>) {
    let summary = match membudget::probe::las::probe(input) {
        Ok(p) => Summary::from_probe(&p),
        Err(e) => return (Planned::None, Err(e)),
    };
    let model = LazFeatures::with_options(options, &summary);
    let mut planned = plan::planned(record, NAME, &model.options(), budget, jobs);
    let from_plan = planned.plan().and_then(|p| {
        let points = |k: &str| p.geometry.get(k).and_then(serde_json::Value::as_u64);
        Some(laz_features::Run {
            threads: u64::from(p.workers),
            tile_points: points("tile_points").filter(|&n| n > 0)?,
            slab_points: points("slab_points").filter(|&n| n > 0)?,
        })
    });
    if from_plan.is_none() {
        planned = planned.reject("the plan has no tile_points or slab_points");
    }
    let run = match from_plan {
        Some(run) => Ok(run),
        None => model.run(&summary, budget, jobs),
    };
    let decided = run.map(|run| Decided {
        model: LazFeatures {
            threads: run.threads,
            ..model
        },
        summary,
        run,
    });
    (planned, decided)
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
    /// The model, threads, tile and slab ([`decide`]).
    decided: Result<Decided, Error>,
    features: &'a [Feature],
    neighbours: &'a [PathBuf],
}

/// Process one input, filling the record's section.
fn one(opts: &Opts, input: &Path, dest: &Path, run: &Run<'_>, r: &mut Record) -> Result<(), Error> {
    let (budget, neighbours) = (run.budget, run.neighbours);
    let features = run.features;
    // Every size the las/laz readers would trust is checked first (the bounded header
    // probe: a damaged header is named as such, not left to the reader's seeks).
    let info = las_io::validate(input)?;
    las_io::check_header_budget(input, &info, run.budget)?;
    let decided = match &run.decided {
        Ok(d) => d,
        Err(e) => return Err(e.clone()),
    };
    let (model, summary) = (&decided.model, &decided.summary);
    let hag = features.contains(&Feature::HeightAboveGround);
    let within_2m = features.contains(&Feature::PointsWithin2m);
    let neighbourhood_reach = opts.plan.neighbourhood_reach(summary);
    let (count, rec_in) = summary
        .points
        .as_ref()
        .map_or((0, 0), |p| (p.count, u64::from(p.record_bytes)));
    let (threads, capacity, slab) = (
        decided.run.threads,
        decided.run.tile_points,
        decided.run.slab_points,
    );
    r.set_path_in(NAME, "output", dest);
    let skip = |r: &mut Record, reason: &str| {
        r.set_in(NAME, "status", "skipped");
        r.set_in(NAME, "reason", reason);
    };
    let exists = "output exists (use --force to overwrite)";
    if dest.exists() && !opts.common.output.force {
        skip(r, exists);
        return Ok(());
    }
    if opts.common.output.dry_run {
        r.set_in(NAME, "status", "dry_run");
        return Ok(());
    }
    // The pass files (records, positions, features, a copy of the positions per pass;
    // the ground points) stay in the page cache when the budget holds them beside the
    // run's own peak: in a memory cgroup that cache counts against the limit.
    let scratch = count.saturating_mul(rec_in + 12 + 4 * features.len() as u64 + 20 + 12);
    let keep_cached = model
        .predicted_peak(count, rec_in, capacity, slab)
        .saturating_add(scratch)
        <= budget;
    let names = opts.names;
    let params = enrich::Params {
        keep_cached,
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
        features: features.to_vec(),
        orientation: match opts.viewpoint {
            Some(v) => Orientation::Towards(v),
            None => Orientation::Up,
        },
        compress: opts.format == OutFormat::Laz,
        capacity,
        slab,
        parallel_codec: slab >= membudget::cost::laz_features::LAZ_CHUNK_POINTS,
        temp_dir: opts
            .temp_dir
            .clone()
            .or_else(tmpdir_env)
            .unwrap_or_else(|| {
                dest.parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| PathBuf::from("."))
            }),
        neighbours: neighbours.to_vec(),
        ground_radius: hag.then_some(opts.plan.ground_radius),
        knn: opts.plan.knn.map(|k| k as usize),
        within_2m,
    };
    let mut atomic = match AtomicFile::claim(dest)? {
        Ok(a) => a,
        Err(busy) => {
            skip(r, &busy);
            return Ok(());
        }
    };
    // Another run may have finished it meanwhile.
    if dest.exists() && !opts.common.output.force {
        skip(r, exists);
        return Ok(());
    }
    let report = enrich::enrich(input, atomic.file(), &params)?;
    atomic.commit()?;
    let sidecars = copy_sidecars(&opts.common.output, input, opts.common.output.force)?;
    if !sidecars.is_empty() {
        r.set_in(NAME, "sidecars", sidecars);
    }
    r.set_in(NAME, "status", "ok");
    r.set_in(NAME, "points", report.points);
    match opts.plan.knn {
        Some(k) => {
            r.set_in(NAME, "k", k);
            r.set_in(NAME, "knn_halo_m", neighbourhood_reach);
            r.set_in(NAME, "knn_retried", report.knn_retried);
        }
        None => r.set_in(NAME, "radius", opts.plan.radius),
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
    r.set_in(
        NAME,
        "phases",
        report
            .phases
            .iter()
            .map(|(name, wall, cpu)| {
                let round = |v: f64| (v * 1000.0).round() / 1000.0;
                (
                    name.to_string(),
                    serde_json::json!({"seconds": round(*wall), "cpu_seconds": round(*cpu)}),
                )
            })
            .collect::<serde_json::Map<_, _>>(),
    );
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

/// `$TMPDIR`, when set and not empty: where users point temporary files (a scratch
/// disk, a node-local SSD under Slurm).
fn tmpdir_env() -> Option<PathBuf> {
    std::env::var_os("TMPDIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_planned_feature_cost_is_the_parsed_one() {
        // chunk-plan knows no feature names: membudget's counts must be laz-enrich's.
        use membudget::cost::laz_features as lf;
        assert_eq!(lf::DEFAULT_FEATURES, Feature::DEFAULT.len() as u64);
        assert_eq!(lf::ALL_FEATURES, Feature::ALL.len() as u64);
        assert_eq!(lf::HEIGHT_ABOVE_GROUND, Feature::HeightAboveGround.name());
        assert_eq!(lf::POINTS_WITHIN_2M, Feature::PointsWithin2m.name());
        for list in [
            None,
            Some("all"),
            Some("planarity, Linearity,planarity"),
            Some("height_above_ground,nx"),
            Some("num_points_2m"),
        ] {
            let o = LazEnrichOptions {
                features: list.map(String::from),
                ..LazEnrichOptions::default()
            };
            let parsed = list.map_or(Feature::DEFAULT.to_vec(), |l| {
                features::parse_list(l).unwrap()
            });
            assert_eq!(o.feature_count(), parsed.len() as u64, "{list:?}");
            assert_eq!(
                o.has(lf::HEIGHT_ABOVE_GROUND),
                parsed.contains(&Feature::HeightAboveGround)
            );
            assert_eq!(
                o.has(lf::POINTS_WITHIN_2M),
                parsed.contains(&Feature::PointsWithin2m)
            );
        }
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
