//! Running a pipeline of real processes (`a | b | c`) and measuring each stage's peak RSS
//! with `wait4` (the kernel's own high-water mark, reaped children included).
//!
//! `membudget::monitor::run_measured` measures one command; a pipeline needs every stage
//! started before any is waited for, hence this module. It follows the same rule: Linux
//! folds the parent's high-water mark at spawn into each child's figure, so xtask resets
//! its own peak first ([`membudget::monitor::reset_peak`]) and reports the floor.

use anyhow::{bail, Context, Result};
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// One finished process.
#[derive(Debug, Clone)]
pub struct Measured {
    /// How it ended.
    pub status: ExitStatus,
    /// Peak RSS in bytes: the maximum of the process and every child it waited for.
    pub peak_rss: u64,
    /// xtask's own RSS high-water mark when the stage started: the child's figure is never
    /// below it (see [`Measured::is_own`]).
    pub floor: u64,
}

impl Measured {
    /// Whether `peak_rss` is the process's own, not the floor inherited from xtask (more
    /// than the 1 MiB the kernel's counters may be off by above it).
    pub fn is_own(&self) -> bool {
        self.peak_rss > self.floor.saturating_add(1 << 20)
    }

    /// The peak for people: `12.0 MiB`, or `<= 9.5 MiB*` when it is only known to be at
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
pub const FLOOR_NOTE: &str = "* not above the RSS a child inherits from xtask at spawn \
                              (Linux counts it in ru_maxrss): its own peak is at most this";

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

/// Reap `child` with `wait4` and return its status and peak RSS. The `Child` must not be
/// waited on afterwards (the process is gone).
pub fn wait_measured(child: &Child, floor: u64) -> Result<Measured> {
    let pid = libc::pid_t::try_from(child.id()).context("pid out of range")?;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data, all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: valid pointers to locals; pid is our own child.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err).context("wait4");
        }
    }
    // Linux reports ru_maxrss in KiB.
    let kib = u64::try_from(usage.ru_maxrss).unwrap_or(0);
    Ok(Measured {
        status: ExitStatus::from_raw(status),
        peak_rss: kib * 1024,
        floor,
    })
}

/// Run `stages` as one pipeline (`a | b | c`): the first stage reads `stdin_file` (or
/// nothing), each later stage reads the previous one's stdout, and the last stage's
/// stdout is collected. Stderr passes through to ours.
pub fn pipeline(stages: Vec<Command>, stdin_file: Option<&std::path::Path>) -> Result<PipelineRun> {
    if stages.is_empty() {
        bail!("empty pipeline");
    }
    // Keep the floor every child inherits as low as xtask's current RSS.
    membudget::monitor::reset_peak();
    let start = Instant::now();
    let n = stages.len();
    let mut children: Vec<Child> = Vec::with_capacity(n);
    for (i, mut cmd) in stages.into_iter().enumerate() {
        let stdin = match children.last_mut() {
            Some(prev) => Stdio::from(prev.stdout.take().context("stage has no stdout")?),
            None => match stdin_file {
                Some(p) => Stdio::from(
                    std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?,
                ),
                None => Stdio::null(),
            },
        };
        cmd.stdin(stdin).stdout(Stdio::piped());
        let child = cmd
            .spawn()
            .with_context(|| format!("starting stage {} ({:?})", i + 1, cmd.get_program()))?;
        children.push(child);
    }
    let floor = membudget::monitor::peak_rss().unwrap_or(0);
    let mut stdout = Vec::new();
    if let Some(last) = children.last_mut() {
        if let Some(mut out) = last.stdout.take() {
            out.read_to_end(&mut stdout)
                .context("reading pipeline output")?;
        }
    }
    let mut measured = Vec::with_capacity(n);
    for c in &children {
        measured.push(wait_measured(c, floor)?);
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

    #[test]
    fn pipeline_passes_data_and_measures_each_stage() {
        let mut a = Command::new("printf");
        a.arg("b\\na\\nc\\n");
        let b = Command::new("sort");
        let run = pipeline(vec![a, b], None).unwrap();
        assert_eq!(run.stdout, b"a\nb\nc\n");
        assert_eq!(run.stages.len(), 2);
        for s in &run.stages {
            assert!(s.status.success());
            // Any process maps at least a few pages.
            assert!(s.peak_rss > 64 * 1024, "{s:?}");
        }
    }

    #[test]
    fn peak_rss_sees_a_large_allocation() {
        // A child that touches 64 MiB must report at least that much.
        let mut c = Command::new("python3");
        c.args([
            "-c",
            "b = bytearray(64 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1",
        ]);
        let Ok(run) = pipeline(vec![c], None) else {
            eprintln!("skipped: no python3");
            return;
        };
        assert!(run.stages[0].status.success());
        assert!(run.stages[0].peak_rss >= 64 << 20, "{:?}", run.stages[0]);
    }

    #[test]
    fn failing_stage_is_reported() {
        let run = pipeline(vec![Command::new("false")], None).unwrap();
        assert_eq!(run.stages[0].status.code(), Some(1));
    }
}
