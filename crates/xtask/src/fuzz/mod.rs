//! `cargo xtask fuzz [TOOL] [--cases N] [--seed S]`: mutation fuzzing of the built tools.
//!
//! Each case takes one seed (a corpus file, or a manifest record about one), stacks one
//! to `--max-mutations` edits on it ([`mutate`]), runs the tool on the mutant in a fresh
//! directory under a time and address-space limit ([`exec`]) and classifies the run: ok,
//! clean error, panic, abort/OOM, signal, hang, partial output, source changed, or an
//! exit/output the contract does not allow. Case `N` of seed `S` is the same mutant on
//! every machine with the same corpus, whatever `--jobs`; `--case N` runs it again.
//! The mutant of every bad case is saved under `target/fuzz/<tool>/<class>/`.

pub(crate) mod corpus;
pub(crate) mod exec;
pub(crate) mod mutate;

use crate::tools::{Tool, TOOLS};
use anyhow::{bail, Context, Result};
use corpus::Seed;
use exec::{Class, Limits, Verdict};
use mutate::Rng;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The input formats of the corpus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Format {
    Tiff,
    Las,
    Fits,
    Zip,
    Pdf,
    Png,
    Jpeg,
    /// Manifest records (NDJSON) on stdin, about a file of another format.
    Ndjson,
}

impl Format {
    /// Every format: what the probing tools read.
    pub const ALL: &'static [Format] = &[
        Format::Tiff,
        Format::Las,
        Format::Fits,
        Format::Zip,
        Format::Pdf,
        Format::Png,
        Format::Jpeg,
        Format::Ndjson,
    ];
}

/// `cargo xtask fuzz` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The tool to fuzz; default: every tool of crates/xtask/src/tools.rs
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(TOOLS.iter().map(|t| t.name)))]
    tool: Option<String>,
    /// Cases per tool
    #[arg(long, default_value_t = 300)]
    cases: u64,
    /// Seed of every random choice: the same seed and corpus give the same cases
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Run only this case (repeatable): reproduces a case a campaign reported
    #[arg(long = "case", value_name = "ID")]
    only: Vec<u64>,
    /// Cargo profile of the tool binaries: release for campaigns, dev while developing
    /// (spares the CPU a release build takes)
    #[arg(long, default_value = "release")]
    profile: String,
    /// Run the tool binaries in DIR instead of building them
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    /// Seconds a run may take before it is killed and called a hang
    #[arg(long, default_value_t = 20.0)]
    timeout: f64,
    /// Address-space limit of every run (RLIMIT_AS): an allocation beyond it fails
    #[arg(long, value_name = "SIZE", default_value = "4GiB")]
    address_space: String,
    /// Runs at once (default: the CPUs this process may use)
    #[arg(short, long)]
    jobs: Option<usize>,
    /// Most mutations stacked on one case
    #[arg(long, default_value_t = 3)]
    max_mutations: usize,
    /// More seed files or directories (beside the generated seeds and tests/data)
    #[arg(long, value_name = "PATH")]
    corpus: Vec<PathBuf>,
    /// Leave out the shared sample data even when it is there
    #[arg(long)]
    no_shared: bool,
    /// Largest seed file taken into the corpus
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    max_seed_bytes: u64,
    /// Where the mutants of bad cases are saved (default: target/fuzz)
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// One finished case.
#[derive(Debug)]
struct Outcome {
    id: u64,
    seed: usize,
    mutations: Vec<String>,
    verdict: Verdict,
    peak_rss: u64,
    seconds: f64,
    saved: Option<PathBuf>,
}

pub fn run(root: &Path, args: &Args) -> Result<ExitCode> {
    let tools: Vec<&Tool> = match &args.tool {
        Some(name) => TOOLS.iter().filter(|t| t.name == name).collect(),
        None => TOOLS.iter().collect(),
    };
    let address_space = match args.address_space.parse::<membudget::budget::BudgetSpec>() {
        Ok(membudget::budget::BudgetSpec::Bytes(b)) => b,
        _ => bail!(
            "--address-space: a size such as 4GiB, not {:?}",
            args.address_space
        ),
    };
    if args.timeout.is_nan() || args.timeout <= 0.0 {
        bail!("--timeout must be above 0 seconds");
    }
    let limits = Limits {
        timeout: Duration::from_secs_f64(args.timeout),
        address_space,
    };
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let target = crate::target_dir(root);
    let bin_dir = match &args.bin_dir {
        // Absolute: the tools run in each case's own directory.
        Some(d) => d
            .canonicalize()
            .with_context(|| format!("--bin-dir {}", d.display()))?,
        None => build(root, &args.profile, &tools)?,
    };
    let save_root = args.out.clone().unwrap_or_else(|| target.join("fuzz"));

    let work = tempfile::Builder::new().prefix("xtask-fuzz.").tempdir()?;
    let seeds = gather(args, &bin_dir, work.path())?;
    eprintln!(
        "xtask fuzz: {} seeds ({} files, {} records), seed {}, {} jobs, limits {} s / {}",
        seeds.len(),
        seeds.iter().filter(|s| s.format != Format::Ndjson).count(),
        seeds.iter().filter(|s| s.format == Format::Ndjson).count(),
        args.seed,
        jobs,
        args.timeout,
        membudget::budget::human_bytes(address_space)
    );

    let mut table = Vec::new();
    let mut any_bad = false;
    for tool in tools {
        let t0 = Instant::now();
        let eligible = eligible(tool, &seeds);
        if eligible.0.is_empty() && eligible.1.is_empty() {
            eprintln!("xtask fuzz: {}: no seed in the corpus it reads", tool.name);
            continue;
        }
        let ids: Vec<u64> = if args.only.is_empty() {
            (0..args.cases).collect()
        } else {
            args.only.clone()
        };
        let ctx = Ctx {
            tool,
            program: bin_dir.join(tool.name),
            seeds: &seeds,
            eligible,
            args,
            limits,
            work: work.path(),
            save: save_root.join(tool.name),
        };
        let outcomes = run_cases(&ctx, &ids, jobs)?;
        any_bad |= report(&ctx, &outcomes);
        table.push((tool.name, outcomes, t0.elapsed()));
    }
    print_table(&table, args.seed);
    Ok(if any_bad {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Build the tools (and mem-estimate and chunk-plan, which write the manifest seeds)
/// in `profile`; their packages are named as their binaries.
fn build(root: &Path, profile: &str, tools: &[&Tool]) -> Result<PathBuf> {
    let mut packages: Vec<&str> = tools.iter().map(|t| t.name).collect();
    for p in [mem_estimate::NAME, chunk_plan::NAME] {
        if !packages.contains(&p) {
            packages.push(p);
        }
    }
    crate::build_profile(root, profile, &packages)
}

/// The corpus: generated seeds, the shared data, `--corpus` paths, then one manifest
/// record per file that mem-estimate and chunk-plan describe without error.
fn gather(args: &Args, bin_dir: &Path, work: &Path) -> Result<Vec<Seed>> {
    let gen = work.join("generated");
    std::fs::create_dir_all(&gen)?;
    let mut seeds = corpus::generated(&gen)?;
    let shared = testkit::shared_data();
    if !args.no_shared && shared.is_dir() {
        seeds.extend(corpus::files_below(&shared, "shared", args.max_seed_bytes)?);
    }
    for (i, p) in args.corpus.iter().enumerate() {
        seeds.extend(corpus::files_below(
            p,
            &format!("corpus{i}"),
            args.max_seed_bytes,
        )?);
    }
    // Records: the files as mem-estimate and chunk-plan describe them, so record edits
    // start from what a real pipeline sends.
    let dir = work.join("described");
    std::fs::create_dir_all(&dir)?;
    let mut paths = Vec::new();
    for (i, s) in seeds.iter().enumerate() {
        let p = dir.join(format!("{i}-{}", s.file_name()));
        std::fs::write(&p, &s.bytes)?;
        paths.push(p);
    }
    let limits = Limits {
        timeout: Duration::from_secs(120),
        address_space: 4 << 30,
    };
    let est = exec::run(
        &bin_dir.join(mem_estimate::NAME),
        &paths
            .iter()
            .map(|p| p.clone().into_os_string())
            .collect::<Vec<_>>(),
        None,
        work,
        work,
        limits,
    )?;
    let plan = exec::run(
        &bin_dir.join(chunk_plan::NAME),
        &["-m".into(), "256MiB".into(), "-".into()],
        Some(est.stdout),
        work,
        work,
        limits,
    )?;
    let mut records = Vec::new();
    for line in String::from_utf8_lossy(&plan.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v.get("error").is_some() {
            continue;
        }
        let Some(i) = v
            .get("path")
            .and_then(|p| p.as_str())
            .and_then(|p| paths.iter().position(|q| q.as_os_str() == p))
        else {
            continue;
        };
        records.push(Seed {
            name: format!("record of {}", seeds[i].name),
            format: Format::Ndjson,
            bytes: format!("{line}\n").into_bytes(),
            subject: Some(i),
        });
    }
    seeds.extend(records);
    Ok(seeds)
}

/// The seeds a tool reads: (files, records).
fn eligible(tool: &Tool, seeds: &[Seed]) -> (Vec<usize>, Vec<usize>) {
    let reads = |f: Format| tool.reads.contains(&f);
    let files = (0..seeds.len())
        .filter(|&i| seeds[i].format != Format::Ndjson && reads(seeds[i].format))
        .collect();
    let records = (0..seeds.len())
        .filter(|&i| {
            seeds[i].format == Format::Ndjson
                && reads(Format::Ndjson)
                && seeds[i].subject.is_some_and(|s| reads(seeds[s].format))
        })
        .collect();
    (files, records)
}

struct Ctx<'a> {
    tool: &'a Tool,
    program: PathBuf,
    seeds: &'a [Seed],
    eligible: (Vec<usize>, Vec<usize>),
    args: &'a Args,
    limits: Limits,
    work: &'a Path,
    save: PathBuf,
}

/// Run the cases on `jobs` threads; outcomes come back in the order of `ids`.
fn run_cases(ctx: &Ctx, ids: &[u64], jobs: usize) -> Result<Vec<Outcome>> {
    let next = AtomicUsize::new(0);
    let slots: Mutex<Vec<Option<Result<Outcome>>>> =
        Mutex::new((0..ids.len()).map(|_| None).collect());
    let done = AtomicUsize::new(0);
    let step = (ids.len() / 10).max(1);
    std::thread::scope(|s| {
        for _ in 0..jobs.min(ids.len()).max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= ids.len() {
                    break;
                }
                // A bug of the harness names its case instead of ending every thread.
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    one_case(ctx, ids[i])
                }))
                .unwrap_or_else(|_| {
                    Err(anyhow::anyhow!("the harness panicked on case {}", ids[i]))
                });
                slots.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
                let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                if d.is_multiple_of(step) && d < ids.len() {
                    eprintln!("xtask fuzz: {}: {d}/{}", ctx.tool.name, ids.len());
                }
            });
        }
    });
    slots
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|o| o.expect("every case ran"))
        .collect()
}

/// Build case `id`'s mutant, run the tool on it, classify, save it when bad.
fn one_case(ctx: &Ctx, id: u64) -> Result<Outcome> {
    let tool = ctx.tool;
    let mut rng = Rng::new(ctx.args.seed, tool.name, id);
    let (files, records) = &ctx.eligible;
    // A quarter of the cases are manifest records (when the tool reads them).
    let seed_idx = if !records.is_empty() && (files.is_empty() || rng.chance(1, 4)) {
        *rng.pick(records)
    } else {
        *rng.pick(files)
    };
    let seed = &ctx.seeds[seed_idx];

    let dir = ctx.work.join(format!("{}-{id}", tool.name));
    let _ = std::fs::remove_dir_all(&dir);
    let (in_dir, out_dir, tmp_dir) = (dir.join("in"), dir.join("out"), dir.join("tmp"));
    for d in [&in_dir, &out_dir, &tmp_dir] {
        std::fs::create_dir_all(d)?;
    }
    let mut bytes = seed.bytes.clone();
    let mut subject = None;
    if let Some(s) = seed.subject {
        // The record is about the case's own copy of its file.
        let sub = &ctx.seeds[s];
        let p = in_dir.join(sub.file_name());
        std::fs::write(&p, &sub.bytes)?;
        let mut v: serde_json::Value = serde_json::from_slice(&bytes)?;
        // Relative to the case directory the tool runs in, so the record's bytes (and
        // so its mutants) do not depend on where the temporary directory is.
        v["path"] = format!("in/{}", sub.file_name()).into();
        bytes = serde_json::to_vec(&v)?;
        bytes.push(b'\n');
        subject = Some(p);
    }
    // Mostly one edit: a mutant that still gets past the first checks reaches deeper code.
    let mut n = 1;
    while n < ctx.args.max_mutations && rng.chance(1, 3) {
        n += 1;
    }
    let mutations: Vec<String> = (0..n)
        .map(|_| mutate::mutate(&mut rng, seed.format, &mut bytes))
        .collect();

    let mut argv: Vec<OsString> = tool
        .fuzz_args
        .iter()
        .map(|a| {
            if *a == "{out}" {
                out_dir.clone().into_os_string()
            } else {
                (*a).into()
            }
        })
        .collect();
    let input = in_dir.join(seed.file_name());
    let stdin = if seed.format == Format::Ndjson {
        argv.push("-".into());
        Some(bytes.clone())
    } else {
        std::fs::write(&input, &bytes)?;
        argv.push(input.clone().into_os_string());
        None
    };
    let before = snapshot(&in_dir);
    let run = exec::run(&ctx.program, &argv, stdin, &dir, &tmp_dir, ctx.limits)?;
    let after = snapshot(&in_dir);
    let changed = (before != after).then(|| describe_change(&before, &after));
    let verdict = exec::classify(tool.name, &run, &dir, &out_dir, &tmp_dir, changed);

    let saved = if verdict.class.is_bad() {
        Some(save(
            ctx,
            id,
            seed,
            &bytes,
            &mutations,
            subject.as_deref(),
            &argv,
            &verdict,
            &run,
        )?)
    } else {
        None
    };
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Outcome {
        id,
        seed: seed_idx,
        mutations,
        verdict,
        peak_rss: run.peak_rss,
        seconds: run.seconds,
        saved,
    })
}

/// The input directory's files and a hash of each, to tell whether the tool changed,
/// added or removed any.
fn snapshot(dir: &Path) -> BTreeMap<String, u64> {
    use std::hash::{Hash, Hasher};
    let mut m = BTreeMap::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let mut h = std::hash::DefaultHasher::new();
            std::fs::read(e.path()).unwrap_or_default().hash(&mut h);
            m.insert(e.file_name().to_string_lossy().into_owned(), h.finish());
        }
    }
    m
}

fn describe_change(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> String {
    let mut what = Vec::new();
    for (k, v) in before {
        match after.get(k) {
            None => what.push(format!("{k} removed")),
            Some(w) if w != v => what.push(format!("{k} modified")),
            _ => {}
        }
    }
    for k in after.keys().filter(|k| !before.contains_key(*k)) {
        what.push(format!("{k} created beside the input"));
    }
    what.join(", ")
}

/// Save a bad case's mutant (and the file its record is about) under
/// `<save>/<class>/s<seed>-c<id>-<name>`, with a `.txt` saying how to run it again.
#[allow(clippy::too_many_arguments)]
fn save(
    ctx: &Ctx,
    id: u64,
    seed: &Seed,
    bytes: &[u8],
    mutations: &[String],
    subject: Option<&Path>,
    argv: &[OsString],
    verdict: &Verdict,
    run: &exec::Run,
) -> Result<PathBuf> {
    let dir = ctx.save.join(verdict.class.name());
    std::fs::create_dir_all(&dir)?;
    let stem = format!("s{}-c{id}", ctx.args.seed);
    let path = dir.join(format!("{stem}-{}", seed.file_name()));
    std::fs::write(&path, bytes)?;
    if let Some(s) = subject {
        std::fs::copy(
            s,
            dir.join(format!(
                "{stem}-{}",
                s.file_name().unwrap().to_string_lossy()
            )),
        )?;
    }
    let shown: Vec<String> = argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let stderr = String::from_utf8_lossy(&run.stderr);
    let tail: Vec<&str> = stderr.lines().take(20).collect();
    let note = format!(
        "tool: {}\nseed file: {}\ncase: {id} of seed {}\nmutations:\n  {}\nverdict: {} ({})\nexit: {:?}, {:.2} s, peak RSS {}\nran: {} {}\nagain: cargo xtask fuzz {} --seed {} --case {id}\nstderr:\n{}\n",
        ctx.tool.name,
        seed.name,
        ctx.args.seed,
        mutations.join("\n  "),
        verdict.class.name(),
        verdict.why,
        run.end,
        run.seconds,
        membudget::budget::human_bytes(run.peak_rss),
        ctx.tool.name,
        shown.join(" "),
        ctx.tool.name,
        ctx.args.seed,
        tail.join("\n"),
    );
    std::fs::write(dir.join(format!("{stem}.txt")), note)?;
    Ok(path)
}

/// Print one line per bad case and the causes grouped; true when any case was bad.
fn report(ctx: &Ctx, outcomes: &[Outcome]) -> bool {
    let bad: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.verdict.class.is_bad())
        .collect();
    for o in &bad {
        println!(
            "{} case {} {}: {} [{}] -> {}; saved {}",
            ctx.tool.name,
            o.id,
            o.verdict.class.name(),
            ctx.seeds[o.seed].name,
            o.mutations.join("; "),
            o.verdict.why,
            o.saved
                .as_ref()
                .map_or(String::new(), |p| p.display().to_string()),
        );
    }
    // Causes: the class and the first reason without its particulars (a panic's site,
    // not its message; "left behind", not the file's random name), with one example.
    let mut causes: BTreeMap<(Class, String), (Vec<u64>, String)> = BTreeMap::new();
    for o in &bad {
        let first = o.verdict.why.split("; ").next().unwrap_or("").to_string();
        let key = match first.strip_prefix("panicked at ") {
            Some(rest) => {
                // "file:line:col: message": the site is up to the third colon.
                let site: Vec<&str> = rest.splitn(4, ':').take(3).collect();
                format!("panicked at {}", site.join(":"))
            }
            None if first.starts_with("memory allocation of") => {
                "memory allocation failed".to_string()
            }
            None => first.split(':').next().unwrap_or("").to_string(),
        };
        let e = causes
            .entry((o.verdict.class, key))
            .or_insert_with(|| (Vec::new(), first.clone()));
        e.0.push(o.id);
    }
    if !causes.is_empty() {
        println!("{}: {} bad cases, by cause:", ctx.tool.name, bad.len());
        for ((class, _), (ids, example)) in &causes {
            let shown: Vec<String> = ids.iter().take(8).map(u64::to_string).collect();
            println!(
                "  {:>5} {:<14} {example} (cases {}{})",
                ids.len(),
                class.name(),
                shown.join(" "),
                if ids.len() > 8 { " ..." } else { "" }
            );
        }
    }
    !bad.is_empty()
}

/// The summary: one row per tool, one column per class, the largest peak RSS and the
/// slowest run.
fn print_table(table: &[(&str, Vec<Outcome>, Duration)], seed: u64) {
    println!();
    print!("{:<14} {:>6}", format!("seed {seed}"), "cases");
    for c in Class::ALL {
        print!(" {:>width$}", c.name(), width = c.name().len().max(4));
    }
    println!(
        " {:>10} {:>8} {:>7}",
        "max RSS #case", "slowest #case", "wall"
    );
    for (name, outcomes, wall) in table {
        print!("{name:<14} {:>6}", outcomes.len());
        for c in Class::ALL {
            let n = outcomes.iter().filter(|o| o.verdict.class == c).count();
            print!(" {:>width$}", n, width = c.name().len().max(4));
        }
        let rss = outcomes.iter().max_by_key(|o| o.peak_rss);
        let slow = outcomes
            .iter()
            .max_by(|a, b| a.seconds.total_cmp(&b.seconds));
        println!(
            " {:>10} {:>8} {:>6.0}s",
            rss.map_or(String::new(), |o| format!(
                "{} #{}",
                membudget::budget::human_bytes(o.peak_rss),
                o.id
            )),
            slow.map_or(String::new(), |o| format!("{:.1}s #{}", o.seconds, o.id)),
            wall.as_secs_f64()
        );
    }
}
