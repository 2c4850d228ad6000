//! `cargo xtask bench <tool>`: one benchmark per tool, each in its own module here, run
//! against a peer program on the same inputs in the same run and printed as one table.
//!
//! To add a benchmark: write `bench/<tool>.rs` with `pub fn run(root) -> Result<bool>`
//! (true = target met), add `mod` and one line to [`BENCHES`].

mod batch;
mod cbz_stream;
mod fits;
mod laz_enrich;
mod mem_estimate;
mod spots;
mod strip_convert;
mod tile_enhance;
// Issue 10's thumbnail cases, run from the tile-enhance benchmark.
mod tile_enhance_thumb;

use anyhow::{Context, Result};
use membudget::budget::human_bytes;
use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// A benchmark: the tool it measures and the function that runs it.
type Bench = (&'static str, fn(&Path) -> Result<bool>);

/// Every benchmark. strip-convert, laz-enrich: one line each; `batch`: both on
/// directories of many small inputs.
const BENCHES: &[Bench] = &[
    ("batch", batch::run),
    ("mem-estimate", mem_estimate::run),
    ("strip-convert", strip_convert::run),
    ("laz-enrich", laz_enrich::run),
    ("cbz-stream", cbz_stream::run),
    ("tile-enhance", tile_enhance::run),
    ("spots", spots::run),
    ("fits", fits::run),
];

/// The names `bench` accepts.
pub fn names() -> Vec<&'static str> {
    BENCHES.iter().map(|(n, _)| *n).collect()
}

/// Run the benchmark of `tool`; exit status 0 when it met its target, 1 when not.
pub fn run(root: &Path, tool: &str) -> Result<ExitCode> {
    let (_, f) = BENCHES
        .iter()
        .find(|(n, _)| *n == tool)
        .with_context(|| format!("no benchmark for {tool}"))?;
    Ok(if f(root)? {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One measured program: the median wall time of some runs and the largest peak RSS.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Row label.
    pub name: String,
    /// Median wall time.
    pub wall: Duration,
    /// Largest peak RSS seen in any run (the process and its children), see
    /// [`crate::measure`].
    pub peak_rss: u64,
    /// Whether that peak is the program's own rather than the floor inherited from xtask.
    pub peak_is_own: bool,
    /// What the last run wrote on stdout.
    pub stdout: Vec<u8>,
}

/// Copy a freshly built binary to `dest` (a private copy: other builds may relink the
/// original while a bench runs) and drop the copy's pages from the page cache, so that
/// its first run reads it from disk as an installed program is read. A file just written
/// stays cached in large folios, and the kernel maps a whole cached folio on a page fault:
/// the same bytes then showed 0.9 MiB more peak RSS (`tile-enhance thumbnail`: 10.6
/// against 9.7 MiB, 5.2 against 4.2 MiB of text resident), a difference the peer's
/// long-installed libraries do not have.
pub fn private_copy(src: &Path, dest: &Path) -> Result<()> {
    use std::os::unix::io::AsRawFd;
    std::fs::copy(src, dest).with_context(|| format!("copying {}", src.display()))?;
    let f = std::fs::File::open(dest)?;
    // Written back first: only clean pages can be dropped.
    f.sync_all()?;
    // SAFETY: posix_fadvise only reads the descriptor and the range (0, 0: the whole
    // file); DONTNEED drops the file's clean cached pages, nothing else.
    let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    anyhow::ensure!(r == 0, "posix_fadvise on {}: error {r}", dest.display());
    Ok(())
}

/// Run `argv` `runs` times with `stdin_file` on stdin; the median wall time resists one
/// slow run on a shared machine. A run that ends with a status not in `ok_codes` is an
/// error.
pub fn measure(
    name: &str,
    runs: usize,
    stdin_file: &Path,
    ok_codes: &[i32],
    argv: &[OsString],
) -> Result<Sample> {
    let mut walls = Vec::with_capacity(runs);
    let mut peak = 0;
    let mut own = false;
    let mut stdout = Vec::new();
    for _ in 0..runs.max(1) {
        let run = crate::measure::pipeline(&[argv.to_vec()], Some(stdin_file), |_| {})
            .with_context(|| format!("running {name}"))?;
        let m = &run.stages[0];
        if !m.status.code().is_some_and(|c| ok_codes.contains(&c)) {
            anyhow::bail!("{name} ended with {}", m.status);
        }
        walls.push(m.wall);
        if m.peak_rss >= peak {
            peak = m.peak_rss;
            own = m.is_own();
        }
        stdout = run.stdout;
    }
    walls.sort();
    Ok(Sample {
        name: name.to_string(),
        wall: walls[walls.len() / 2],
        peak_rss: peak,
        peak_is_own: own,
        stdout,
    })
}

/// One program in an alternating comparison: its label, argv, and what to do before each
/// run (outside the timing), such as removing the previous output.
pub struct Contender<'a> {
    /// Row label.
    pub name: String,
    /// The command line.
    pub argv: Vec<OsString>,
    /// Run before each measured run.
    pub before: Box<dyn Fn() -> Result<()> + 'a>,
}

impl<'a> Contender<'a> {
    /// A contender with nothing to do before its runs.
    pub fn new(name: impl Into<String>, argv: Vec<OsString>) -> Contender<'a> {
        Contender {
            name: name.into(),
            argv,
            before: Box::new(|| Ok(())),
        }
    }

    /// A contender whose output `out` is removed before each run.
    pub fn removing(name: impl Into<String>, argv: Vec<OsString>, out: &'a Path) -> Contender<'a> {
        Contender {
            before: Box::new(move || remove(out)),
            ..Contender::new(name, argv)
        }
    }
}

/// Run the contenders in turn, `rounds` times (so load changes hit them alike); each
/// one's median wall and largest peak RSS (its own only when every run's was), and the
/// stdout of its run with that peak.
pub fn alternate(rounds: usize, contenders: &[Contender]) -> Result<Vec<Sample>> {
    let devnull = std::path::PathBuf::from("/dev/null");
    let mut walls: Vec<Vec<Duration>> = vec![Vec::new(); contenders.len()];
    let mut own = vec![true; contenders.len()];
    let mut samples: Vec<Option<Sample>> = vec![None; contenders.len()];
    for round in 0..rounds.max(1) {
        if rounds > 1 {
            eprintln!("xtask: round {}/{rounds}", round + 1);
        }
        for (i, c) in contenders.iter().enumerate() {
            (c.before)()?;
            let s = measure(&c.name, 1, &devnull, &[0], &c.argv)?;
            walls[i].push(s.wall);
            own[i] &= s.peak_is_own;
            if samples[i]
                .as_ref()
                .is_none_or(|old| s.peak_rss >= old.peak_rss)
            {
                samples[i] = Some(s);
            }
        }
    }
    Ok(samples
        .into_iter()
        .zip(walls)
        .zip(own)
        .map(|((s, mut w), own)| {
            let mut s = s.expect("at least one round");
            w.sort();
            s.wall = w[w.len() / 2];
            s.peak_is_own = own;
            s
        })
        .collect())
}

/// Alternating rounds: `MEMBUDGET_BENCH_ROUNDS` when set to a positive number, else
/// `default`.
pub fn rounds_or(default: usize) -> usize {
    std::env::var("MEMBUDGET_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

/// Whether `MEMBUDGET_BENCH_ONLY` (a comma-separated list) names `what`; `None` when it
/// is unset, so each bench says what runs by default.
pub fn only(what: &str) -> Option<bool> {
    std::env::var("MEMBUDGET_BENCH_ONLY")
        .ok()
        .map(|only| only.split(',').any(|w| w.trim() == what))
}

/// A command line from paths and strings alike.
pub fn argv(items: &[&dyn AsRef<std::ffi::OsStr>]) -> Vec<OsString> {
    items.iter().map(|s| s.as_ref().to_os_string()).collect()
}

/// Remove a file or a directory tree if it is there.
pub fn remove(p: &Path) -> Result<()> {
    if p.is_dir() {
        std::fs::remove_dir_all(p)?;
    } else if p.exists() {
        std::fs::remove_file(p)?;
    }
    Ok(())
}

/// Print `samples` as a table against the first one: wall, items/s, peak RSS and how
/// many times slower (wall) and heavier (RSS) each is than the first.
pub fn print_table(items: u64, unit: &str, samples: &[Sample]) {
    let Some(base) = samples.first() else {
        return;
    };
    let mut rows = vec![vec![
        "program".to_string(),
        "role".to_string(),
        "wall".to_string(),
        format!("{unit}/s"),
        "peak RSS".to_string(),
        "wall ratio".to_string(),
        "RSS ratio".to_string(),
    ]];
    for (i, s) in samples.iter().enumerate() {
        let secs = s.wall.as_secs_f64();
        rows.push(vec![
            s.name.clone(),
            if i == 0 { "tool" } else { "peer" }.to_string(),
            format!("{secs:.3} s"),
            format!("{:.0}", items as f64 / secs.max(1e-9)),
            if s.peak_is_own {
                human_bytes(s.peak_rss)
            } else {
                format!("<= {}*", human_bytes(s.peak_rss))
            },
            format!("{:.2}", secs / base.wall.as_secs_f64().max(1e-9)),
            format!("{:.2}", s.peak_rss as f64 / base.peak_rss.max(1) as f64),
        ]);
    }
    crate::demo::print_table(&rows);
    if samples.iter().any(|s| !s.peak_is_own) {
        println!("{}", crate::measure::FLOOR_NOTE);
    }
}
