//! `cargo xtask reliability`: every processing tool under attack, with figures.
//!
//! For each job of [`jobs::JOBS`] (a tool or subcommand over a set of real inputs):
//!
//! 1. a clean run (the reference: which inputs succeed, what their outputs are);
//! 2. `--kills` runs into one output directory, each killed with SIGKILL (its whole
//!    process group, as a dying node would) at a random moment of the clean run's
//!    duration; after each, every file under a final name must validate (jpylyzer,
//!    laspy, astropy, `unzip -t`, or the same tree as the reference for a directory)
//!    and the sources must be unchanged; then a last run must finish, skip what was
//!    done and leave no temporary file in the output directory, beside the inputs or in
//!    `$TMPDIR`;
//! 3. a full disk (a small tmpfs mounted for the run; root only) as the output
//!    directory, and as `$TMPDIR` for tools with scratch files, and under the archive
//!    for in-place edits: exit 1 or 2 with a message about space, no partial output, no
//!    temporary, sources intact;
//! 4. two runs at once into one output directory: both finish, every output valid;
//! 5. `--fuzz-cases` mutants of the inputs (the mutators of `cargo xtask fuzz`), each run
//!    under a time and address-space limit and classified.
//!
//! The table counts per job: inputs tried, crashes, hangs, OOM kills, partial outputs,
//! leftover temporaries, sources modified, other failed checks. Exit 1 unless all are 0.

mod jobs;

use crate::fuzz::exec::{self, Class, End, Limits};
use crate::fuzz::{corpus, mutate, Format};
use anyhow::{bail, Context, Result};
use jobs::{Job, JOBS};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

/// `cargo xtask reliability` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Jobs to run (repeatable), by table row name or binary name; default every job
    #[arg(long = "tool", value_name = "NAME")]
    tools: Vec<String>,
    /// SIGKILLs per job
    #[arg(long, default_value_t = 24)]
    kills: usize,
    /// Mutated inputs per job
    #[arg(long, default_value_t = 60)]
    fuzz_cases: u64,
    /// Seed of every random choice (kill moments, mutants)
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Cargo profile of the tool binaries
    #[arg(long, default_value = "release")]
    profile: String,
    /// Run the tool binaries in DIR instead of building them
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    /// Seconds a run may take before it is killed and called a hang
    #[arg(long, default_value_t = 120.0)]
    timeout: f64,
    /// Leave out the full-disk checks (they mount a tmpfs, which needs root)
    #[arg(long)]
    no_full_disk: bool,
    /// Use at most N of each job's inputs (a short run, as CI does)
    #[arg(long, value_name = "N")]
    max_inputs: Option<usize>,
}

/// The figures of one job.
#[derive(Debug, Default)]
struct Figures {
    inputs: u64,
    kills: u64,
    crashes: u64,
    hangs: u64,
    oom: u64,
    partial: u64,
    leftover: u64,
    sources: u64,
    other: u64,
    /// One line per failure, for the report under the table.
    notes: Vec<String>,
}

impl Figures {
    fn bad(&self) -> u64 {
        self.crashes
            + self.hangs
            + self.oom
            + self.partial
            + self.leftover
            + self.sources
            + self.other
    }

    fn note(&mut self, what: &str, line: String) {
        self.notes.push(format!("{what}: {line}"));
    }
}

pub fn run(root: &Path, args: &Args) -> Result<ExitCode> {
    let jobs: Vec<&Job> = if args.tools.is_empty() {
        JOBS.iter().collect()
    } else {
        let picked: Vec<&Job> = JOBS
            .iter()
            .filter(|j| args.tools.iter().any(|t| t == j.name || t == j.program))
            .collect();
        if picked.is_empty() {
            let names: Vec<&str> = JOBS.iter().map(|j| j.name).collect();
            bail!("--tool: none of {:?} is one of {names:?}", args.tools);
        }
        picked
    };
    if args.timeout.is_nan() || args.timeout <= 0.0 {
        bail!("--timeout must be above 0 seconds");
    }
    let target = crate::target_dir(root);
    let bin_dir = match &args.bin_dir {
        Some(d) => d
            .canonicalize()
            .with_context(|| format!("--bin-dir {}", d.display()))?,
        None => build(root, &args.profile, &jobs)?,
    };
    let python = match std::env::var_os("MEMBUDGET_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => crate::suite::ensure_venv(root)?,
    };
    let work = tempfile::Builder::new()
        .prefix("xtask-reliability.")
        .tempdir_in(&target)?;
    let mut table = Vec::new();
    for job in jobs {
        let t0 = Instant::now();
        eprintln!("xtask reliability: {}", job.name);
        let dir = work.path().join(job.name.replace(' ', "-"));
        std::fs::create_dir_all(&dir)?;
        let mut ctx = Ctx {
            job,
            program: bin_dir.join(job.program),
            dir,
            args,
            validator: Validator::new(python.clone()),
            fig: Figures::default(),
            rng: mutate::Rng::new(args.seed, job.name, 0),
        };
        ctx.run_all()?;
        table.push((job.name, ctx.fig, t0.elapsed()));
    }
    print_table(&table);
    Ok(if table.iter().all(|(_, f, _)| f.bad() == 0) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn build(root: &Path, profile: &str, jobs: &[&Job]) -> Result<PathBuf> {
    let mut packages: Vec<&str> = jobs.iter().map(|j| j.program).collect();
    packages.sort();
    packages.dedup();
    crate::build_profile(root, profile, &packages)
}

fn print_table(table: &[(&str, Figures, Duration)]) {
    println!();
    println!(
        "| tool | inputs tried | SIGKILLs | crashes | hangs | OOM kills | partial outputs | leftover temporaries | sources modified | other failed checks | wall |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (name, f, wall) in table {
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} s |",
            f.inputs,
            f.kills,
            f.crashes,
            f.hangs,
            f.oom,
            f.partial,
            f.leftover,
            f.sources,
            f.other,
            wall.as_secs_f64()
        );
    }
    for (name, f, _) in table {
        for n in &f.notes {
            println!("{name}: {n}");
        }
    }
}

/// One job's run.
struct Ctx<'a> {
    job: &'a Job,
    program: PathBuf,
    dir: PathBuf,
    args: &'a Args,
    validator: Validator,
    fig: Figures,
    rng: mutate::Rng,
}

/// The clean run: inputs that succeed and their outputs.
struct Reference {
    /// Inputs (names in the input directory) whose record is ok.
    inputs: Vec<String>,
    /// The reference output directory.
    out: PathBuf,
    /// Output entry names (top level of the output directory) -> input name.
    outputs: BTreeMap<String, String>,
    /// For in-place jobs: each input's entry names before and after the clean run (the
    /// bytes differ from run to run: an edit stamps the time).
    in_place: BTreeMap<String, (Vec<String>, Vec<String>)>,
    wall: Duration,
}

impl Ctx<'_> {
    fn limits(&self, timeout: Duration) -> Limits {
        Limits {
            timeout,
            address_space: 4 << 30,
        }
    }

    fn full_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.args.timeout)
    }

    /// Fresh copies of the job's inputs in `dir`.
    fn make_inputs(&self, dir: &Path, only: Option<&[String]>) -> Result<Vec<String>> {
        std::fs::create_dir_all(dir)?;
        let mut names = (self.job.inputs)(dir, &self.program)?;
        let Some(only) = only else {
            if let Some(max) = self.args.max_inputs {
                for n in names.split_off(max.clamp(1, names.len().max(1))) {
                    remove_any(&dir.join(n))?;
                }
            }
            return Ok(names);
        };
        // Inputs the clean run refused are removed, so every later run expects success.
        for n in &names {
            if !only.contains(n) {
                remove_any(&dir.join(n))?;
            }
        }
        Ok(only.to_vec())
    }

    /// The job's command line over `inputs`, writing into `out`.
    fn argv(&self, out: &Path, inputs: &[String]) -> Vec<OsString> {
        let mut argv: Vec<OsString> = self
            .job
            .args
            .iter()
            .map(|a| {
                if *a == "{out}" {
                    out.as_os_str().to_owned()
                } else {
                    (*a).into()
                }
            })
            .collect();
        argv.extend(inputs.iter().map(OsString::from));
        argv
    }

    /// Run the job; counts crashes, hangs and OOM kills (not our own SIGKILL).
    fn exec(
        &mut self,
        what: &str,
        in_dir: &Path,
        out: &Path,
        tmp: &Path,
        inputs: &[String],
        kill_after: Option<Duration>,
    ) -> Result<(exec::Run, bool)> {
        let argv = self.argv(out, inputs);
        let timeout = kill_after.unwrap_or(self.full_timeout());
        let run = exec::run(
            &self.program,
            &argv,
            None,
            in_dir,
            tmp,
            self.limits(timeout),
        )?;
        self.fig.inputs += inputs.len() as u64;
        let killed = kill_after.is_some() && run.end == End::TimedOut;
        self.judge_end(what, &run, kill_after.is_some());
        Ok((run, killed))
    }

    fn judge_end(&mut self, what: &str, run: &exec::Run, ours: bool) {
        let stderr = String::from_utf8_lossy(&run.stderr);
        let first = |pat: &str| {
            stderr
                .lines()
                .find(|l| l.contains(pat))
                .unwrap_or("")
                .to_string()
        };
        if stderr.contains("memory allocation of") {
            self.fig.oom += 1;
            self.fig.note(what, first("memory allocation of"));
            return;
        }
        match run.end {
            End::TimedOut if !ours => {
                self.fig.hangs += 1;
                self.fig
                    .note(what, format!("no end after {:.0} s", run.seconds));
            }
            End::Signaled(s) if s == libc::SIGKILL => {
                // Not ours (ours end as TimedOut): the kernel's OOM killer.
                self.fig.oom += 1;
                self.fig.note(what, "killed by SIGKILL (OOM killer)".into());
            }
            End::Signaled(s) => {
                self.fig.crashes += 1;
                self.fig.note(what, format!("killed by signal {s}"));
            }
            _ if stderr.contains("panicked at") || run.end == End::Exited(101) => {
                self.fig.crashes += 1;
                self.fig.note(what, first("panicked at"));
            }
            _ => {}
        }
    }

    fn run_all(&mut self) -> Result<()> {
        let Some(reference) = self.reference()? else {
            return Ok(());
        };
        self.kills(&reference)?;
        if !self.args.no_full_disk {
            self.full_disk(&reference)?;
        }
        self.concurrent(&reference)?;
        self.fuzz(&reference)?;
        Ok(())
    }

    /// The clean run.
    fn reference(&mut self) -> Result<Option<Reference>> {
        let base = self.dir.join("reference");
        let (in_dir, out, tmp) = (base.join("in"), base.join("out"), base.join("tmp"));
        std::fs::create_dir_all(&tmp)?;
        let names = self.make_inputs(&in_dir, None)?;
        let before: BTreeMap<String, Vec<String>> = names
            .iter()
            .map(|n| (n.clone(), zip_names(&in_dir.join(n))))
            .collect();
        let t0 = Instant::now();
        let (run, _) = self.exec("clean run", &in_dir, &out, &tmp, &names, None)?;
        let wall = t0.elapsed();
        let mut inputs = Vec::new();
        let mut outputs = BTreeMap::new();
        for r in testkit::ndjson(&run.stdout) {
            let Some(path) = r.get("path").and_then(|p| p.as_str()) else {
                continue;
            };
            let sec = &r[self.job.program];
            if r.get("error").is_some() || sec["status"] == "skipped" {
                continue;
            }
            // One input can have several outputs (the pages of a multi-page TIFF).
            if !inputs.iter().any(|i| i == path) {
                inputs.push(path.to_string());
            }
            if let Some(o) = sec.get("output").and_then(|o| o.as_str()) {
                let name = Path::new(o)
                    .strip_prefix(&out)
                    .ok()
                    .and_then(|p| p.components().next())
                    .map(|c| c.as_os_str().to_string_lossy().into_owned());
                if let Some(name) = name {
                    outputs.insert(name, path.to_string());
                }
            }
        }
        if inputs.is_empty() {
            self.fig.other += 1;
            self.fig.note(
                "clean run",
                format!(
                    "no input succeeded: {}",
                    String::from_utf8_lossy(&run.stderr)
                        .lines()
                        .next()
                        .unwrap_or("")
                ),
            );
            return Ok(None);
        }
        let in_place = names
            .iter()
            .filter(|n| self.job.in_place && inputs.contains(n))
            .map(|n| (n.clone(), (before[n].clone(), zip_names(&in_dir.join(n)))))
            .collect();
        // The reference outputs are checked like every other.
        let reference = Reference {
            inputs,
            out,
            outputs,
            in_place,
            wall,
        };
        let bad = self.check_outputs(&reference, &in_dir, &reference.out)?;
        for b in bad {
            self.fig.partial += 1;
            self.fig.note("clean run", b);
        }
        eprintln!(
            "xtask reliability: {}: {} of {} inputs ok in {:.1} s",
            self.job.name,
            reference.inputs.len(),
            names.len(),
            wall.as_secs_f64()
        );
        Ok(Some(reference))
    }

    /// Every output entry in `out` (or every archive edited in place in `in_dir`) is
    /// whole: the failures, one line each.
    fn check_outputs(&mut self, r: &Reference, in_dir: &Path, out: &Path) -> Result<Vec<String>> {
        let mut bad = Vec::new();
        if self.job.in_place {
            for (name, (before, after)) in &r.in_place {
                let p = in_dir.join(name);
                let names = zip_names(&p);
                if let Err(why) = self.validator.check(&p) {
                    bad.push(format!("{name}: {why}"));
                } else if names != *before && names != *after {
                    bad.push(format!(
                        "{name}: entries {names:?}, neither the original's nor the edit's"
                    ));
                }
            }
            return Ok(bad);
        }
        let Ok(rd) = std::fs::read_dir(out) else {
            return Ok(bad);
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue; // temporaries: counted after the next run
            }
            if !r.outputs.contains_key(&name) {
                bad.push(format!("{name}: not an output of the clean run"));
                continue;
            }
            let p = e.path();
            let verdict = if p.is_dir() {
                same_tree(&r.out.join(&name), &p)
            } else {
                self.validator.check(&p)
            };
            if let Err(why) = verdict {
                bad.push(format!("{name}: {why}"));
            }
        }
        Ok(bad)
    }

    /// Sources changed since `before` (not for in-place jobs).
    fn check_sources(&mut self, what: &str, in_dir: &Path, before: &BTreeMap<String, u64>) {
        if self.job.in_place {
            return;
        }
        for (n, h) in before {
            if hash_tree(&in_dir.join(n)) != *h {
                self.fig.sources += 1;
                self.fig.note(what, format!("{n} modified"));
            }
        }
    }

    /// Temporaries left in the output directory, beside the inputs, or in TMPDIR.
    fn check_leftovers(&mut self, what: &str, dirs: &[&Path], tmp: &Path) {
        let mut left = Vec::new();
        for d in dirs {
            hidden_below(d, &mut left);
        }
        if let Ok(rd) = std::fs::read_dir(tmp) {
            left.extend(rd.flatten().map(|e| e.path()));
        }
        for l in left {
            self.fig.leftover += 1;
            self.fig.note(what, format!("left behind: {}", l.display()));
        }
    }

    fn partial(&mut self, what: &str, bad: Vec<String>) {
        for b in bad {
            self.fig.partial += 1;
            self.fig.note(what, b);
        }
    }

    /// SIGKILL at random moments, then a run to the end.
    fn kills(&mut self, r: &Reference) -> Result<()> {
        let base = self.dir.join("kills");
        let (in_dir, out, tmp) = (base.join("in"), base.join("out"), base.join("tmp"));
        std::fs::create_dir_all(&tmp)?;
        let inputs = self.make_inputs(&in_dir, Some(&r.inputs))?;
        let before: BTreeMap<String, u64> = inputs
            .iter()
            .map(|n| (n.clone(), hash_tree(&in_dir.join(n))))
            .collect();
        // Moments spread over the clean run's length (with a margin: runs that find
        // work done are shorter, so some kills land on a finished run).
        let span = r.wall.as_secs_f64().max(0.05) * 1.1;
        let mut landed = 0;
        for k in 0..self.args.kills {
            let at = span * (self.rng.next() % 10_000) as f64 / 10_000.0;
            let what = format!("kill {k} at {at:.2} s");
            let (_, killed) = self.exec(
                &what,
                &in_dir,
                &out,
                &tmp,
                &inputs,
                Some(Duration::from_secs_f64(at)),
            )?;
            if killed {
                landed += 1;
                self.fig.kills += 1;
            }
            let bad = self.check_outputs(r, &in_dir, &out)?;
            self.partial(&what, bad);
            self.check_sources(&what, &in_dir, &before);
            if !killed {
                // It finished before the moment came: start over so the next kills
                // land on work in progress again.
                self.check_leftovers(&what, &[&out, &in_dir], &tmp);
                remove_any(&out)?;
                if self.job.in_place {
                    self.make_inputs(&in_dir, Some(&r.inputs))?;
                }
            }
        }
        // The run to the end: completes, skips what was done, leaves nothing behind.
        let done = self.done_outputs(r, &in_dir, &out);
        let (run, _) = self.exec("rerun after kills", &in_dir, &out, &tmp, &inputs, None)?;
        if run.end != End::Exited(0) {
            self.fig.other += 1;
            self.fig.note(
                "rerun after kills",
                format!("{:?}: {}", run.end, first_line(&run.stderr)),
            );
        }
        let records = testkit::ndjson(&run.stdout);
        let skipped = records
            .iter()
            .filter(|x| {
                let s = &x[self.job.program]["status"];
                s == "skipped" || s == "unchanged"
            })
            .count();
        if skipped != done {
            self.fig.other += 1;
            self.fig.note(
                "rerun after kills",
                format!("{done} outputs were done, {skipped} records skipped them"),
            );
        }
        let bad = self.check_outputs(r, &in_dir, &out)?;
        self.partial("rerun after kills", bad);
        let missing = if self.job.in_place {
            0
        } else {
            r.outputs.keys().filter(|o| !out.join(o).exists()).count()
        };
        if missing > 0 {
            self.fig.other += 1;
            self.fig
                .note("rerun after kills", format!("{missing} outputs missing"));
        }
        self.check_sources("rerun after kills", &in_dir, &before);
        self.check_leftovers("rerun after kills", &[&out, &in_dir], &tmp);
        eprintln!(
            "xtask reliability: {}: {landed} of {} kills landed mid-run",
            self.job.name, self.args.kills
        );
        Ok(())
    }

    /// Outputs already complete (valid) before a rerun.
    fn done_outputs(&mut self, r: &Reference, in_dir: &Path, out: &Path) -> usize {
        if self.job.in_place {
            return r
                .in_place
                .iter()
                .filter(|(n, (_, after))| zip_names(&in_dir.join(n)) == *after)
                .count();
        }
        r.outputs.keys().filter(|o| out.join(o).exists()).count()
    }

    /// A full disk under the outputs, under `$TMPDIR`, and under an edited archive.
    fn full_disk(&mut self, r: &Reference) -> Result<()> {
        let out_bytes: u64 = if self.job.in_place {
            0
        } else {
            r.outputs.keys().map(|o| du(&r.out.join(o))).sum()
        };
        let base = self.dir.join("full-disk");
        let in_dir = base.join("in");
        let inputs = self.make_inputs(&in_dir, Some(&r.inputs))?;
        let mut cases: Vec<(&str, PathBuf, PathBuf, u64)> = Vec::new();
        let (mnt, tmp) = (base.join("mnt"), base.join("tmp"));
        std::fs::create_dir_all(&tmp)?;
        if self.job.in_place {
            // The archives on a disk with room for little more than themselves.
            cases.push(("full disk under the archives", mnt.clone(), tmp.clone(), 0));
        } else {
            // Room for about a third of the outputs: some are written, one fails.
            let size = (out_bytes / 3).max(4096);
            cases.push((
                "full disk under the outputs",
                mnt.join("out"),
                tmp.clone(),
                size,
            ));
            if self.job.scratch_in_tmpdir {
                cases.push((
                    "full disk under TMPDIR",
                    base.join("out"),
                    mnt.clone(),
                    64 << 10,
                ));
            }
        }
        for (what, out, tmpdir, size) in cases {
            let mount = if self.job.in_place {
                let need: u64 = inputs.iter().map(|n| du(&in_dir.join(n))).sum();
                let m = match Tmpfs::mount(&mnt, need + (16 << 10)) {
                    Ok(m) => m,
                    Err(e) => {
                        eprintln!("xtask reliability: {what}: skipped ({e:#})");
                        return Ok(());
                    }
                };
                for n in &inputs {
                    std::fs::copy(in_dir.join(n), mnt.join(n))?;
                }
                m
            } else {
                match Tmpfs::mount(&mnt, size) {
                    Ok(m) => m,
                    Err(e) => {
                        eprintln!("xtask reliability: {what}: skipped ({e:#})");
                        return Ok(());
                    }
                }
            };
            let run_in = if self.job.in_place { &mnt } else { &in_dir };
            let before: BTreeMap<String, u64> = inputs
                .iter()
                .map(|n| (n.clone(), hash_tree(&run_in.join(n))))
                .collect();
            let (run, _) = self.exec(what, run_in, &out, &tmpdir, &inputs, None)?;
            let stderr = String::from_utf8_lossy(&run.stderr).to_lowercase();
            let code_ok = matches!(run.end, End::Exited(1 | 2));
            let said = stderr.contains("space") || stderr.contains("disk full");
            if !code_ok || !said {
                self.fig.other += 1;
                self.fig.note(
                    what,
                    format!(
                        "{:?}, stderr {:?} (want exit 1 or 2 and a message about space)",
                        run.end,
                        first_line(&run.stderr)
                    ),
                );
            }
            if self.job.in_place {
                // Each archive is the original or the edited one, never anything else.
                let bad = self.check_outputs(r, &mnt, &out)?;
                self.partial(what, bad);
                self.check_leftovers(what, &[&mnt], &tmpdir);
            } else {
                let bad = self.check_outputs(r, &in_dir, &out)?;
                self.partial(what, bad);
                self.check_sources(what, &in_dir, &before);
                self.check_leftovers(what, &[&out, &in_dir], &tmpdir);
            }
            drop(mount);
            remove_any(&base.join("out"))?;
        }
        Ok(())
    }

    /// Two runs at once into one output directory.
    fn concurrent(&mut self, r: &Reference) -> Result<()> {
        let base = self.dir.join("concurrent");
        let (in_dir, out, tmp) = (base.join("in"), base.join("out"), base.join("tmp"));
        std::fs::create_dir_all(&tmp)?;
        let inputs = self.make_inputs(&in_dir, Some(&r.inputs))?;
        let before: BTreeMap<String, u64> = inputs
            .iter()
            .map(|n| (n.clone(), hash_tree(&in_dir.join(n))))
            .collect();
        let argv = self.argv(&out, &inputs);
        let limits = self.limits(self.full_timeout());
        let runs: Vec<Result<exec::Run>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..2)
                .map(|_| s.spawn(|| exec::run(&self.program, &argv, None, &in_dir, &tmp, limits)))
                .collect();
            hs.into_iter()
                .map(|h| h.join().expect("runner thread"))
                .collect()
        });
        for (i, run) in runs.into_iter().enumerate() {
            let run = run?;
            let what = format!("concurrent run {i}");
            self.fig.inputs += inputs.len() as u64;
            self.judge_end(&what, &run, false);
            if run.end != End::Exited(0) {
                self.fig.other += 1;
                self.fig
                    .note(&what, format!("{:?}: {}", run.end, first_line(&run.stderr)));
            }
        }
        let bad = self.check_outputs(r, &in_dir, &out)?;
        self.partial("concurrent runs", bad);
        if self.job.in_place {
            let not_done = r.in_place.len() - self.done_outputs(r, &in_dir, &out);
            if not_done > 0 {
                self.fig.other += 1;
                self.fig
                    .note("concurrent runs", format!("{not_done} archives not edited"));
            }
        } else {
            let missing = r.outputs.keys().filter(|o| !out.join(o).exists()).count();
            if missing > 0 {
                self.fig.other += 1;
                self.fig
                    .note("concurrent runs", format!("{missing} outputs missing"));
            }
        }
        self.check_sources("concurrent runs", &in_dir, &before);
        self.check_leftovers("concurrent runs", &[&out, &in_dir], &tmp);
        Ok(())
    }

    /// Mutants of the inputs, one per run, classified as `cargo xtask fuzz` does.
    fn fuzz(&mut self, r: &Reference) -> Result<()> {
        let base = self.dir.join("fuzz");
        let pristine = base.join("pristine");
        self.make_inputs(&pristine, Some(&r.inputs))?;
        let limits = Limits {
            timeout: Duration::from_secs(20),
            address_space: 4 << 30,
        };
        for case in 0..self.args.fuzz_cases {
            let mut rng = mutate::Rng::new(self.args.seed, self.job.name, case + 1);
            let input = rng.pick(&r.inputs).clone();
            let dir = base.join(format!("case{case}"));
            let (in_dir, out, tmp) = (dir.join("in"), dir.join("out"), dir.join("tmp"));
            for d in [&in_dir, &out, &tmp] {
                std::fs::create_dir_all(d)?;
            }
            copy_tree(&pristine.join(&input), &in_dir.join(&input))?;
            // The file to damage: the input, or one file of an input directory.
            let mut files = Vec::new();
            files_below(&in_dir.join(&input), &mut files);
            files.sort();
            let Some(victim) = files.get(rng.below(files.len())).cloned() else {
                continue;
            };
            let mut bytes = std::fs::read(&victim)?;
            let format = corpus::sniff(&bytes).unwrap_or(Format::Jpeg);
            let edits = 1 + rng.below(2);
            let mut how = Vec::new();
            for _ in 0..edits {
                how.push(mutate::mutate(&mut rng, format, &mut bytes));
            }
            std::fs::write(&victim, &bytes)?;
            let before = hash_tree(&in_dir.join(&input));
            let argv = self.argv(&out, std::slice::from_ref(&input));
            let run = exec::run(&self.program, &argv, None, &in_dir, &tmp, limits)?;
            self.fig.inputs += 1;
            let changed = (!self.job.in_place && hash_tree(&in_dir.join(&input)) != before)
                .then(|| format!("{input} modified"));
            let v = exec::classify(self.job.program, &run, &in_dir, &out, &tmp, changed);
            let what = format!("mutant {case} of {input} [{}]", how.join("; "));
            match v.class {
                Class::Ok | Class::CleanError => {}
                Class::Panic | Class::Signal => {
                    self.fig.crashes += 1;
                    self.fig.note(&what, v.why);
                }
                Class::Abort if v.why.contains("memory allocation") => {
                    self.fig.oom += 1;
                    self.fig.note(&what, v.why);
                }
                Class::Abort => {
                    self.fig.crashes += 1;
                    self.fig.note(&what, v.why);
                }
                Class::Hang => {
                    self.fig.hangs += 1;
                    self.fig.note(&what, v.why);
                }
                Class::Partial if v.why.starts_with("left behind") => {
                    self.fig.leftover += 1;
                    self.fig.note(&what, v.why);
                }
                Class::Partial => {
                    self.fig.partial += 1;
                    self.fig.note(&what, v.why);
                }
                Class::SourceChanged => {
                    self.fig.sources += 1;
                    self.fig.note(&what, v.why);
                }
                Class::Unexpected => {
                    self.fig.other += 1;
                    self.fig.note(&what, v.why);
                }
            }
            if self.job.in_place && v.class == Class::Ok {
                // An edit that says ok left a whole archive.
                if let Err(why) = self.validator.check(&in_dir.join(&input)) {
                    self.fig.partial += 1;
                    self.fig.note(&what, why);
                }
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
        Ok(())
    }
}

fn first_line(b: &[u8]) -> String {
    String::from_utf8_lossy(b)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

fn remove_any(p: &Path) -> Result<()> {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p)?,
        Ok(_) => std::fs::remove_file(p)?,
        Err(_) => {}
    }
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    if from.is_dir() {
        std::fs::create_dir_all(to)?;
        for e in std::fs::read_dir(from)?.flatten() {
            copy_tree(&e.path(), &to.join(e.file_name()))?;
        }
    } else {
        std::fs::copy(from, to)?;
    }
    Ok(())
}

fn files_below(p: &Path, out: &mut Vec<PathBuf>) {
    if p.is_dir() {
        if let Ok(rd) = std::fs::read_dir(p) {
            for e in rd.flatten() {
                files_below(&e.path(), out);
            }
        }
    } else {
        out.push(p.to_path_buf());
    }
}

/// Hidden entries (temporaries, locks, scratch directories) below `dir`.
fn hidden_below(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if e.file_name().to_string_lossy().starts_with('.') {
            out.push(p);
        } else if p.is_dir() {
            hidden_below(&p, out);
        }
    }
}

/// Bytes below `p`.
fn du(p: &Path) -> u64 {
    let mut files = Vec::new();
    files_below(p, &mut files);
    files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum()
}

/// A hash of a file, or of a directory's names and contents.
fn hash_tree(p: &Path) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    let mut files = Vec::new();
    files_below(p, &mut files);
    files.sort();
    for f in files {
        f.strip_prefix(p).unwrap_or(&f).hash(&mut h);
        std::fs::read(&f).unwrap_or_default().hash(&mut h);
    }
    h.finish()
}

/// The entry names of an archive, sorted (empty when it does not open).
fn zip_names(p: &Path) -> Vec<String> {
    let Ok(f) = std::fs::File::open(p) else {
        return Vec::new();
    };
    let Ok(z) = zip::ZipArchive::new(std::io::BufReader::new(f)) else {
        return Vec::new();
    };
    let mut names: Vec<String> = z
        .file_names()
        .filter_map(|n| n.ok().map(|c| c.into_owned()))
        .collect();
    names.sort();
    names
}

/// The same names and contents as the reference tree.
fn same_tree(reference: &Path, got: &Path) -> std::result::Result<(), String> {
    let list = |d: &Path| -> BTreeSet<PathBuf> {
        let mut v = Vec::new();
        files_below(d, &mut v);
        v.into_iter()
            .map(|f| f.strip_prefix(d).unwrap_or(&f).to_path_buf())
            .collect()
    };
    let (a, b) = (list(reference), list(got));
    if a != b {
        return Err(format!(
            "{} files where the clean run wrote {}",
            b.len(),
            a.len()
        ));
    }
    for f in &a {
        if std::fs::read(reference.join(f)).ok() != std::fs::read(got.join(f)).ok() {
            return Err(format!("{} differs from the clean run's", f.display()));
        }
    }
    Ok(())
}

/// Validators nobody here wrote: jpylyzer (JP2), laspy (LAS/LAZ, every point read),
/// astropy (FITS, every HDU's data), `unzip -t` (CBZ/ZIP, every CRC). A file's verdict
/// is kept by (inode, size, mtime): a complete output does not change.
struct Validator {
    python: PathBuf,
    seen: HashMap<(PathBuf, u64, u64, i64), std::result::Result<(), String>>,
}

const VALIDATE_PY: &str = r#"
import json, sys
def check(p):
    if p.endswith(".jp2"):
        from jpylyzer import jpylyzer
        r = jpylyzer.checkOneFile(p, "jp2")
        if r.findtext("isValid") != "True":
            return "jpylyzer: not valid"
    elif p.endswith((".laz", ".las")):
        import laspy
        with laspy.open(p) as f:
            want, got = f.header.point_count, 0
            for pts in f.chunk_iterator(1 << 16):
                got += len(pts)
        if got != want:
            return "laspy read %d points, the header says %d" % (got, want)
    elif p.endswith(".fits"):
        from astropy.io import fits
        with fits.open(p) as h:
            for u in h:
                u.data
    else:
        return "no validator for this extension"
    return None
for p in sys.argv[1:]:
    try:
        why = check(p)
    except Exception as e:
        why = "%s: %s" % (type(e).__name__, e)
    print(json.dumps({"path": p, "why": why}))
"#;

impl Validator {
    fn new(python: PathBuf) -> Validator {
        Validator {
            python,
            seen: HashMap::new(),
        }
    }

    fn check(&mut self, p: &Path) -> std::result::Result<(), String> {
        let Ok(m) = std::fs::metadata(p) else {
            return Err("vanished".into());
        };
        let key = (
            p.to_path_buf(),
            m.ino(),
            m.len(),
            m.mtime_nsec() + m.mtime() * 1_000_000_000,
        );
        if let Some(v) = self.seen.get(&key) {
            return v.clone();
        }
        let v = self.check_now(p);
        self.seen.insert(key, v.clone());
        v
    }

    fn check_now(&self, p: &Path) -> std::result::Result<(), String> {
        let ext = p
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        if ext == "cbz" || ext == "zip" {
            let out = Command::new("unzip")
                .arg("-tq")
                .arg(p)
                .output()
                .map_err(|e| format!("running unzip: {e}"))?;
            return if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "unzip -t: {}",
                    String::from_utf8_lossy(&out.stdout)
                        .lines()
                        .chain(String::from_utf8_lossy(&out.stderr).lines())
                        .next()
                        .unwrap_or("failed")
                ))
            };
        }
        let out = Command::new(&self.python)
            .arg("-c")
            .arg(VALIDATE_PY)
            .arg(p)
            .output()
            .map_err(|e| format!("running {}: {e}", self.python.display()))?;
        let rec = testkit::ndjson(&out.stdout);
        match rec.first().map(|r| r["why"].clone()) {
            Some(serde_json::Value::Null) => Ok(()),
            Some(w) => Err(w.as_str().unwrap_or("invalid").to_string()),
            None => Err(format!("validator failed: {}", first_line(&out.stderr))),
        }
    }
}

/// A tmpfs of `bytes` mounted on a directory for as long as this lives.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, bytes: u64) -> Result<Tmpfs> {
        std::fs::create_dir_all(dir)?;
        let size = bytes.div_ceil(4096) * 4096;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .context("running mount")?;
        anyhow::ensure!(
            out.status.success(),
            "mount -t tmpfs: {}",
            first_line(&out.stderr)
        );
        Ok(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}
