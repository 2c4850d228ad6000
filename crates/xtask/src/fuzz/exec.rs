//! Running one tool on one mutant under a time and address-space limit, and telling
//! what happened.

use anyhow::{Context, Result};
use std::ffi::OsString;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The limits every run gets.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub timeout: Duration,
    /// RLIMIT_AS in bytes: an allocation beyond it fails (and Rust aborts), as it would
    /// under a container's or Slurm's limit, instead of swapping the shared machine.
    pub address_space: u64,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Exited(i32),
    Signaled(i32),
    TimedOut,
}

/// What a run left: its end, output streams (the first [`KEEP`] bytes of each) and
/// peak RSS.
#[derive(Debug)]
pub struct Run {
    pub end: End,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub peak_rss: u64,
    pub seconds: f64,
}

/// Bytes of stdout and stderr kept; the rest is read and dropped, so a chatty tool
/// never blocks on a full pipe (which would look like a hang).
const KEEP: usize = 1 << 20;

/// Run `program args` in `cwd` with `TMPDIR=tmp`, feeding `stdin` (or nothing).
pub fn run(
    program: &Path,
    args: &[OsString],
    stdin: Option<Vec<u8>>,
    cwd: &Path,
    tmp: &Path,
    limits: Limits,
) -> Result<Run> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(cwd)
        .env("TMPDIR", tmp)
        // Short stderr: the panic line is what we classify by, not the backtrace.
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let as_limit = limits.address_space;
    // SAFETY: the closure runs in the forked child before exec, where only
    // async-signal-safe calls are allowed: it calls setpgid and setrlimit only, with
    // values on the stack, allocating nothing and taking no lock.
    unsafe {
        cmd.pre_exec(move || {
            // Its own process group, so a hang is killed with everything it started.
            if libc::setpgid(0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let as_lim = libc::rlimit {
                rlim_cur: as_limit,
                rlim_max: as_limit,
            };
            // No core files: an abort must not write gigabytes into the case dir.
            let core = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &as_lim) != 0
                || libc::setrlimit(libc::RLIMIT_CORE, &core) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let m = membudget::monitor::run_measured_with(
        &mut cmd,
        &membudget::monitor::RunOptions {
            stdin,
            timeout: Some(limits.timeout),
            kill_group: true,
            keep: Some(KEEP),
        },
    )
    .with_context(|| format!("running {}", program.display()))?;
    let end = if m.timed_out {
        End::TimedOut
    } else if let Some(sig) = m.status.signal() {
        End::Signaled(sig)
    } else {
        End::Exited(m.status.code().unwrap_or(-1))
    };
    Ok(Run {
        end,
        stdout: m.stdout.unwrap_or_default(),
        stderr: m.stderr.unwrap_or_default(),
        peak_rss: m.peak_rss_bytes,
        seconds: m.wall.as_secs_f64(),
    })
}

/// The classes of outcome, worst first (a run gets the worst that applies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    SourceChanged,
    Hang,
    Abort,
    Signal,
    Panic,
    Partial,
    /// An exit status or output the contract does not allow (exit 1 without an error
    /// record, exit 0 with one, a stdout line that is not JSON, an unknown status).
    Unexpected,
    CleanError,
    Ok,
}

impl Class {
    pub const ALL: [Class; 9] = [
        Class::Ok,
        Class::CleanError,
        Class::Panic,
        Class::Abort,
        Class::Signal,
        Class::Hang,
        Class::Partial,
        Class::SourceChanged,
        Class::Unexpected,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Class::Ok => "ok",
            Class::CleanError => "clean-error",
            Class::Panic => "panic",
            Class::Abort => "abort-oom",
            Class::Signal => "signal",
            Class::Hang => "hang",
            Class::Partial => "partial-output",
            Class::SourceChanged => "source-changed",
            Class::Unexpected => "unexpected",
        }
    }

    pub fn is_bad(self) -> bool {
        !matches!(self, Class::Ok | Class::CleanError)
    }
}

/// A verdict: the class and a one-line reason (the panic site, the signal, the file left
/// behind...), which also groups cases by cause.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub class: Class,
    pub why: String,
}

/// Classify a run of `tool`. `out_dir` and `tmp_dir` are checked for files left behind,
/// `source_changed` says whether the input files differ from before the run.
pub fn classify(
    tool: &str,
    run: &Run,
    cwd: &Path,
    out_dir: &Path,
    tmp_dir: &Path,
    source_changed: Option<String>,
) -> Verdict {
    let mut found: Vec<(Class, String)> = Vec::new();
    if let Some(why) = source_changed {
        found.push((Class::SourceChanged, why));
    }
    let stderr = String::from_utf8_lossy(&run.stderr);
    let panic_line = stderr
        .lines()
        .position(|l| l.contains("panicked at"))
        .map(|i| {
            // "thread 'x' panicked at src/a.rs:1:2:" and the message on the next line.
            let lines: Vec<&str> = stderr.lines().collect();
            let at = lines[i]
                .split("panicked at")
                .nth(1)
                .unwrap_or("")
                .trim()
                .trim_end_matches(':');
            let msg = lines.get(i + 1).copied().unwrap_or("").trim();
            format!("panicked at {}: {}", short_site(at), truncate(msg, 120))
        });
    let alloc_failed = stderr
        .lines()
        .find(|l| l.contains("memory allocation of") || l.contains("memory allocation failed"))
        .map(|l| l.trim().to_string());
    match run.end {
        End::TimedOut => found.push((Class::Hang, "killed at the time limit".into())),
        End::Signaled(sig) if sig == libc::SIGABRT || alloc_failed.is_some() => found.push((
            Class::Abort,
            alloc_failed.unwrap_or_else(|| "killed by SIGABRT".into()),
        )),
        End::Signaled(sig) => found.push((Class::Signal, format!("killed by signal {sig}"))),
        End::Exited(_) => {}
    }
    if let Some(p) = &panic_line {
        found.push((Class::Panic, p.clone()));
    } else if run.end == End::Exited(101) {
        found.push((Class::Panic, "exit 101".into()));
    }

    // The records on stdout: every line JSON; errors are records with an `error`.
    let text = String::from_utf8_lossy(&run.stdout);
    let mut records = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(v) => records.push(v),
            Err(_) => found.push((
                Class::Unexpected,
                format!("stdout line is not JSON: {:?}", truncate(line, 60)),
            )),
        }
    }
    let errors = records.iter().filter(|r| r.get("error").is_some()).count();
    if let End::Exited(code) = run.end {
        let said = !stderr.trim().is_empty();
        let bad = match code {
            0 if errors > 0 => Some(format!("exit 0 with {errors} error record(s)")),
            0 if records.is_empty() => Some("exit 0 and no record".into()),
            1 | 3 if errors == 0 => Some(format!("exit {code} without an error record")),
            1 | 3 if !said => Some(format!("exit {code} without a line on stderr")),
            2 if !said => Some("exit 2 without a message".into()),
            0..=3 | 101 => None,
            c => Some(format!("exit status {c}")),
        };
        if let Some(b) = bad {
            found.push((Class::Unexpected, b));
        }
    }

    // Outputs: every file in out/ must be the output of an ok record, and valid; nothing
    // hidden, temporary or half-written may stay in out/ or in TMPDIR.
    let claimed: Vec<PathBuf> = records
        .iter()
        .filter(|r| r.get("error").is_none())
        .filter_map(|r| r.get(tool)?.get("output")?.as_str().map(|o| cwd.join(o)))
        .collect();
    let mut left = Vec::new();
    list_files(out_dir, &mut left);
    list_files(tmp_dir, &mut left);
    for f in left {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let shown = f.strip_prefix(cwd).unwrap_or(&f).display().to_string();
        if claimed.iter().any(|c| c.is_dir() && f.starts_with(c)) {
            // Inside a directory output (cbz-stream unpack): the archive's entries as
            // they are, whatever their names and contents.
        } else if name.starts_with('.') || name.ends_with(".part") {
            found.push((Class::Partial, format!("left behind: {shown}")));
        } else if !claimed.iter().any(|c| same_file(c, &f)) {
            found.push((
                Class::Partial,
                format!("output without an ok record: {shown}"),
            ));
        } else if let Err(e) = valid_output(&f) {
            found.push((Class::Partial, format!("{shown}: {e}")));
        }
    }
    for c in &claimed {
        if !c.exists() {
            found.push((
                Class::Unexpected,
                format!("record names a missing output {}", c.display()),
            ));
        }
    }

    if found.is_empty() {
        let class = match run.end {
            End::Exited(0) => Class::Ok,
            _ => Class::CleanError,
        };
        let why = if class == Class::Ok {
            String::new()
        } else {
            let first = records
                .iter()
                .find_map(|r| r.get("error")?.get("kind")?.as_str().map(str::to_string));
            first.unwrap_or_else(|| truncate(stderr.lines().next().unwrap_or(""), 100))
        };
        return Verdict { class, why };
    }
    found.sort_by_key(|f| f.0);
    let class = found[0].0;
    let why = found
        .iter()
        .map(|f| f.1.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    Verdict { class, why }
}

/// A panic site without the machine's paths: `laz-0.13.0/src/x.rs:1:2` for a crate from
/// the registry, `library/alloc/...` for the standard library.
fn short_site(at: &str) -> String {
    if let Some(i) = at.find("/registry/src/") {
        let rest = &at[i + "/registry/src/".len()..];
        return rest.split_once('/').map_or(rest, |(_, r)| r).to_string();
    }
    if let Some(rest) = at.strip_prefix("/rustc/") {
        return rest.split_once('/').map_or(rest, |(_, r)| r).to_string();
    }
    at.to_string()
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n).chain("...".chars()).collect()
    }
}

/// Every file below `dir`, and every hidden directory (scratch left behind).
fn list_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        let hidden = e.file_name().to_string_lossy().starts_with('.');
        if is_dir && !hidden {
            // Mirrored output directories are made before the output; an empty one
            // after a clean error is harmless. Hidden ones are scratch left behind.
            list_files(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// A final-named output is whole: a JP2 has its signature and ends with the codestream's
/// EOC marker; a LAS/LAZ file reads back with as many points as its header says.
fn valid_output(path: &Path) -> Result<(), String> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if len == 0 {
        return Err("empty output".into());
    }
    match ext.as_str() {
        "jp2" | "j2k" => {
            let b = std::fs::read(path).map_err(|e| e.to_string())?;
            let sig = b"\0\0\0\x0cjP  \r\n\x87\n";
            if ext == "jp2" && !b.starts_with(sig) {
                return Err("no JP2 signature box".into());
            }
            if !b.ends_with(&[0xFF, 0xD9]) {
                return Err("codestream does not end with EOC (truncated)".into());
            }
            Ok(())
        }
        "las" | "laz" => {
            let p = path.to_path_buf();
            // The reader is third-party code: a panic on our own output is a finding too.
            let r = std::panic::catch_unwind(move || -> Result<(), String> {
                let mut reader = las::Reader::from_path(&p).map_err(|e| e.to_string())?;
                let want = reader.header().number_of_points();
                // In batches, so a huge output does not sit whole in memory.
                let mut n = 0u64;
                loop {
                    let got = reader
                        .read_points(1 << 16)
                        .map_err(|e| format!("after point {n}: {e}"))?
                        .len() as u64;
                    if got == 0 {
                        break;
                    }
                    n += got;
                }
                if n != want {
                    return Err(format!("{n} points read, header says {want}"));
                }
                Ok(())
            });
            match r {
                Ok(r) => r,
                Err(_) => Err("the las crate panicked reading it back".into()),
            }
        }
        _ => Ok(()),
    }
}
