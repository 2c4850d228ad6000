//! Running a pipeline of real processes (`a | b | c`) and measuring each stage's peak RSS
//! and wall time.
//!
//! Linux folds the parent's memory high-water mark at spawn into the child's `ru_maxrss`,
//! so a child started by xtask (which holds tens of MiB after generating samples) could
//! never report less than that. Each stage therefore runs under `xtask measure-child`: a
//! fresh, small xtask process that starts the real command with
//! `membudget::monitor::run_measured` (wait4) and writes the figures to a report file.
//! What is left inherited is that small process's own peak, reported as the floor.

use anyhow::{bail, Context, Result};
use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// One finished process.
#[derive(Debug, Clone)]
pub struct Measured {
    /// How it ended.
    pub status: ExitStatus,
    /// Peak RSS in bytes: the maximum of the process and every child it waited for.
    pub peak_rss: u64,
    /// The measuring process's own high-water mark when the command started: the
    /// command's figure is never below it (see [`Measured::is_own`]).
    pub floor: u64,
    /// From spawn to exit of the command.
    pub wall: Duration,
}

impl Measured {
    /// Whether `peak_rss` is the process's own, not the inherited floor (more than the
    /// 1 MiB the kernel's counters may be off by above it).
    pub fn is_own(&self) -> bool {
        self.peak_rss > self.floor.saturating_add(1 << 20)
    }

    /// The peak for people: `12.0 MiB`, or `<= 3.1 MiB*` when it is only known to be at
    /// most the inherited floor.
    pub fn shown(&self) -> String {
        let h = membudget::budget::human_bytes(self.peak_rss);
        if self.is_own() {
            h
        } else {
            format!("<= {h}*")
        }
    }
}

/// The footnote for [`Measured::shown`]'s star.
pub const FLOOR_NOTE: &str = "* within 1 MiB of the RSS a child inherits from the process that \
                              starts it (Linux counts it in ru_maxrss): its own peak is at most this";

/// One finished pipeline.
#[derive(Debug)]
pub struct PipelineRun {
    /// What the last stage wrote on stdout.
    pub stdout: Vec<u8>,
    /// Each stage, in order.
    pub stages: Vec<Measured>,
    /// From the first spawn to the last exit.
    pub wall: Duration,
}

/// The body of the hidden `xtask measure-child REPORT -- ARGV...`: run `argv` with
/// inherited stdio, write `raw-wait-status peak floor wall-ns` to `report`, and exit
/// with the command's status.
pub fn measure_child(report: &Path, argv: &[OsString]) -> Result<ExitCode> {
    let (program, args) = argv.split_first().context("no command to measure")?;
    let mut cmd = Command::new(program);
    cmd.args(args);
    membudget::monitor::reset_peak();
    let m = membudget::monitor::run_measured(&mut cmd)
        .with_context(|| format!("starting {}", program.to_string_lossy()))?;
    std::fs::write(
        report,
        format!(
            "{} {} {} {}\n",
            m.status.into_raw(),
            m.peak_rss_bytes,
            m.floor_bytes,
            m.wall.as_nanos()
        ),
    )?;
    Ok(match m.status.code() {
        Some(c) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
        // 128 + signal, as shells report it.
        None => ExitCode::from(128u8.saturating_add(m.status.signal().unwrap_or(0) as u8)),
    })
}

fn read_report(report: &Path) -> Result<Measured> {
    let text = std::fs::read_to_string(report)
        .with_context(|| format!("no measurement in {}", report.display()))?;
    let f: Vec<u128> = text
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .with_context(|| format!("bad measurement {text:?}"))?;
    let [raw, peak, floor, wall] = f[..] else {
        bail!("bad measurement {text:?}");
    };
    Ok(Measured {
        status: ExitStatus::from_raw(i32::try_from(raw)?),
        peak_rss: u64::try_from(peak)?,
        floor: u64::try_from(floor)?,
        wall: Duration::from_nanos(u64::try_from(wall)?),
    })
}

/// Run `stages` (each an argv) as one pipeline: the first stage reads `stdin_file` (or
/// nothing), each later stage reads the previous one's stdout, and the last stage's
/// stdout is collected. Stderr passes through. `setup` configures every stage
/// (working directory, environment).
pub fn pipeline(
    stages: &[Vec<OsString>],
    stdin_file: Option<&Path>,
    setup: impl Fn(&mut Command),
) -> Result<PipelineRun> {
    if stages.is_empty() {
        bail!("empty pipeline");
    }
    let reports = tempfile::tempdir().context("temp dir for measurements")?;
    let me = std::env::current_exe().context("finding xtask's own binary")?;
    let start = Instant::now();
    let mut children: Vec<Child> = Vec::with_capacity(stages.len());
    for (i, argv) in stages.iter().enumerate() {
        let stdin = match children.last_mut() {
            Some(prev) => Stdio::from(prev.stdout.take().context("stage has no stdout")?),
            None => match stdin_file {
                Some(p) => Stdio::from(
                    std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?,
                ),
                None => Stdio::null(),
            },
        };
        let mut cmd = Command::new(&me);
        cmd.arg("measure-child")
            .arg(reports.path().join(i.to_string()))
            .arg("--")
            .args(argv);
        setup(&mut cmd);
        cmd.stdin(stdin).stdout(Stdio::piped());
        let child = cmd
            .spawn()
            .with_context(|| format!("starting stage {} ({argv:?})", i + 1))?;
        children.push(child);
    }
    let mut stdout = Vec::new();
    if let Some(last) = children.last_mut() {
        if let Some(mut out) = last.stdout.take() {
            std::io::Read::read_to_end(&mut out, &mut stdout).context("reading pipeline output")?;
        }
    }
    let mut measured = Vec::with_capacity(children.len());
    for (i, mut c) in children.into_iter().enumerate() {
        let st = c.wait()?;
        match read_report(&reports.path().join(i.to_string())) {
            Ok(m) => measured.push(m),
            // The measuring process could not start the command: it said why on stderr.
            Err(e) => bail!("stage {} ({:?}) failed ({st}): {e:#}", i + 1, stages[i]),
        }
    }
    Ok(PipelineRun {
        stdout,
        stages: measured,
        wall: start.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    #[test]
    fn a_large_allocation_is_measured_as_the_childs_own() {
        let dir = tempfile::tempdir().unwrap();
        let report = dir.path().join("r");
        // 64 MiB touched page by page: the child's own peak is at least that.
        let code = "b = bytearray(64 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1";
        if measure_child(&report, &argv(&["python3", "-c", code])).is_err() {
            eprintln!("skipped: no python3");
            return;
        }
        let m = read_report(&report).unwrap();
        assert!(m.status.success());
        assert!(m.peak_rss >= 64 << 20, "{m:?}");
        assert!(m.is_own(), "{m:?}");
        assert!(!m.shown().starts_with("<="));
    }

    #[test]
    fn exit_status_and_small_peaks_are_reported_honestly() {
        let dir = tempfile::tempdir().unwrap();
        let report = dir.path().join("r");
        let code = measure_child(&report, &argv(&["sh", "-c", "exit 3"])).unwrap();
        assert_eq!(code, ExitCode::from(3));
        let m = read_report(&report).unwrap();
        assert_eq!(m.status.code(), Some(3));
        assert!(m.peak_rss > 0 && m.floor > 0, "{m:?}");
        // A shell that does nothing is not above the floor it inherits from this test
        // process, and says so.
        if !m.is_own() {
            assert!(m.shown().starts_with("<= "));
        }
    }

    #[test]
    fn a_missing_program_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let report = dir.path().join("r");
        assert!(measure_child(&report, &argv(&["/nonexistent/prog"])).is_err());
        assert!(read_report(&report).is_err());
    }
}
