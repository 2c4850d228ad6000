//! The one command builder of the test suites, as ripgrep's `TestCommand` and uutils'
//! `ucmd` are: a tool binary (or any program) with arguments, stdin, environment and
//! working directory, run to completion with stdout, stderr, status and the child's own
//! peak RSS collected.
//!
//! ```no_run
//! let ran = testkit::tool("strip-convert").args(["--force", "a.tif"]).ok();
//! let records = ran.records();
//! ```
//!
//! Runs go through [`membudget::monitor::run_measured_with`]: `wait4` on this very child
//! (so other children of the test process do not count), after [`reset_peak`] on the
//! test process, whose high-water mark at spawn Linux folds into the child's figure.

use membudget::monitor::{reset_peak, run_measured_with, RunOptions};
use std::ffi::OsStr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::Duration;

/// A command being built; [`Cmd::run`] or [`Cmd::ok`] runs it.
#[derive(Debug)]
pub struct Cmd {
    cmd: Command,
    stdin: Option<Vec<u8>>,
    keep_stdin: bool,
    bound: Option<Duration>,
}

/// A workspace binary (`"laz-enrich"`...), built once if it is not there yet.
pub fn tool(name: &str) -> Cmd {
    cmd(crate::bin(name))
}

/// `name ARGS` (a workspace binary) with `stdin` fed, whatever its exit status.
pub fn run_tool(name: &str, args: &[&str], stdin: &str) -> Ran {
    tool(name).args(args).stdin(stdin).run()
}

/// `name ARGS` run in `dir`, stdin empty: its records, exit code and stderr.
pub fn run_in(name: &str, dir: &Path, args: &[&str]) -> (Vec<serde_json::Value>, i32, String) {
    tool(name).current_dir(dir).args(args).run().parts()
}

/// Any program (`"vips"`, a path...).
pub fn cmd(program: impl AsRef<OsStr>) -> Cmd {
    Cmd::from(Command::new(program))
}

impl From<Command> for Cmd {
    /// A command set up elsewhere ([`crate::unprivileged`], a `sh -c` line...).
    fn from(cmd: Command) -> Cmd {
        Cmd {
            cmd,
            stdin: None,
            keep_stdin: false,
            bound: None,
        }
    }
}

impl Cmd {
    /// One argument.
    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Cmd {
        self.cmd.arg(a);
        self
    }

    /// Arguments.
    pub fn args<I, A>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = A>,
        A: AsRef<OsStr>,
    {
        self.cmd.args(args);
        self
    }

    /// An environment variable.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Cmd {
        self.cmd.env(key, value);
        self
    }

    /// An environment variable removed.
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Cmd {
        self.cmd.env_remove(key);
        self
    }

    /// Start the child with the default action for SIGINT, SIGTERM and SIGHUP: a test
    /// runner started in the background (`cmd &` in a script, `nohup`) passes them down
    /// ignored, and the tools rightly keep an ignored signal ignored, so a test that
    /// signals the child must undo that.
    pub fn default_signals(mut self) -> Cmd {
        use std::os::unix::process::CommandExt;
        // SAFETY: between fork and exec only async-signal-safe `signal` calls are made.
        unsafe {
            self.cmd.pre_exec(|| {
                for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                    libc::signal(s, libc::SIG_DFL);
                }
                Ok(())
            });
        }
        self
    }

    /// The working directory.
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Cmd {
        self.cmd.current_dir(dir);
        self
    }

    /// Bytes fed to stdin (written from a thread, then closed). Without it stdin is
    /// `/dev/null`, never the test's own.
    pub fn stdin(mut self, data: impl AsRef<[u8]>) -> Cmd {
        self.stdin = Some(data.as_ref().to_vec());
        self
    }

    /// Stdin as the [`Command`] given to [`Cmd::from`] set it up.
    pub(crate) fn keep_stdin(mut self) -> Cmd {
        self.keep_stdin = true;
        self
    }

    /// A hang guard: a run still going after `bound` is killed and the test panics.
    /// Generous on purpose (FIFOs, hostile files), not a speed requirement.
    pub fn bound(mut self, bound: Duration) -> Cmd {
        self.bound = Some(bound);
        self
    }

    /// The [`Command`] itself, for what the builder does not cover.
    pub fn command(&mut self) -> &mut Command {
        &mut self.cmd
    }

    /// Run to completion, whatever the exit status.
    pub fn run(mut self) -> Ran {
        self.run_once()
    }

    /// As [`Cmd::run`], for a test that holds a run to a small budget: a run whose peak
    /// RSS is not known to be its own ([`Ran::peak_is_own`]: this test process's RSS at
    /// spawn, which other tests in it can push up, hid it) is run again, up to 3 times;
    /// see also [`Ran::child_peak`].
    pub fn run_own_peak(mut self) -> Ran {
        let mut ran = self.run_once();
        for _ in 1..3 {
            if ran.peak_is_own || !ran.status.success() {
                break;
            }
            std::thread::sleep(Duration::from_secs(2));
            ran = self.run_once();
        }
        ran
    }

    fn run_once(&mut self) -> Ran {
        let what = format!(
            "{} {:?}",
            self.cmd.get_program().to_string_lossy(),
            self.cmd.get_args().collect::<Vec<_>>()
        );
        if self.stdin.is_none() && !self.keep_stdin {
            self.cmd.stdin(Stdio::null());
        }
        self.cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let opts = RunOptions {
            stdin: self.stdin.clone(),
            timeout: self.bound,
            ..RunOptions::default()
        };
        reset_peak();
        let m = run_measured_with(&mut self.cmd, &opts)
            .unwrap_or_else(|e| panic!("running {what}: {e}"));
        if m.timed_out {
            panic!("{what} still running after {:?}: it hangs", self.bound);
        }
        Ran {
            peak_is_own: m.peak_is_own(),
            status: m.status,
            stdout: m.stdout.unwrap_or_default(),
            stderr: m.stderr.unwrap_or_default(),
            peak_rss: m.peak_rss_bytes,
            wall: m.wall,
            what,
        }
    }

    /// Start it without waiting, stdin empty and stdout and stderr discarded: for tests
    /// that kill a run midway.
    pub fn spawn(self) -> Child {
        self.spawn_with(Stdio::null())
    }

    /// As [`Cmd::spawn`], with stdout piped, for tests that watch the records come.
    pub fn spawn_piped(self) -> Child {
        self.spawn_with(Stdio::piped())
    }

    fn spawn_with(mut self, stdout: Stdio) -> Child {
        assert!(self.stdin.is_none(), "spawn feeds no stdin bytes");
        if !self.keep_stdin {
            self.cmd.stdin(Stdio::null());
        }
        self.cmd
            .stdout(stdout)
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.cmd.get_program().to_string_lossy()))
    }

    /// Run to completion; panic with stdout and stderr unless it succeeded.
    pub fn ok(self) -> Ran {
        let ran = self.run();
        ran.check();
        ran
    }
}

/// A finished run.
#[derive(Debug)]
pub struct Ran {
    /// The exit status.
    pub status: ExitStatus,
    /// Everything written to stdout.
    pub stdout: Vec<u8>,
    /// Everything written to stderr.
    pub stderr: Vec<u8>,
    /// The child's peak RSS in bytes (`ru_maxrss` from `wait4`). Never below the test
    /// process's own peak at spawn, which Linux folds into it: see
    /// [`Ran::peak_is_own`].
    pub peak_rss: u64,
    /// Whether [`Ran::peak_rss`] is above what the test process held at spawn, so the
    /// child's own (see [`membudget::monitor::Measured::peak_is_own`]).
    pub peak_is_own: bool,
    /// Wall-clock time from spawn to exit.
    pub wall: Duration,
    what: String,
}

impl Ran {
    /// The exit code, -1 when a signal ended the run.
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }

    /// The NDJSON records on stdout.
    pub fn records(&self) -> Vec<serde_json::Value> {
        crate::ndjson(&self.stdout)
    }

    /// Stdout as text.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Stderr as text.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// Panic with stdout and stderr unless the run succeeded.
    pub fn check(&self) -> &Ran {
        crate::check_parts(&self.status, &self.stdout, &self.stderr, &self.what);
        self
    }

    /// Panic with stdout and stderr unless the run exited with `code`.
    pub fn expect_code(&self, code: i32) -> &Ran {
        assert_eq!(
            self.code(),
            code,
            "{}:\nstdout:\n{}\nstderr:\n{}",
            self.what,
            self.stdout_text(),
            self.stderr_text()
        );
        self
    }

    /// The child's peak RSS: [`Ran::peak_rss`] when it is the child's own, else (this
    /// test process's RSS hid it) the kernel's high-water mark the child read of itself
    /// at the end (`VmHWM`), as `section` of its record says it (`peak_rss`).
    pub fn child_peak(&self, section: &serde_json::Value) -> u64 {
        if self.peak_is_own {
            self.peak_rss
        } else {
            section["peak_rss"].as_u64().expect("the record's peak_rss")
        }
    }

    /// Records, exit code and stderr text, the three things most tests look at.
    pub fn parts(&self) -> (Vec<serde_json::Value>, i32, String) {
        (self.records(), self.code(), self.stderr_text())
    }

    /// As [`std::process::Command::output`] would have returned it.
    pub fn output(self) -> Output {
        Output {
            status: self.status,
            stdout: self.stdout,
            stderr: self.stderr,
        }
    }
}

/// `a | b | ...` through real pipes, as a shell runs it: the first stage's stdin is
/// empty, every stage but the last must succeed (their stderr goes to the test's), and
/// the last stage's run is returned, measured.
pub fn pipe(stages: impl IntoIterator<Item = Cmd>) -> Ran {
    let mut stages: Vec<Cmd> = stages.into_iter().collect();
    let mut last = stages.pop().expect("a pipeline has a stage");
    let mut upstream = Vec::new();
    let mut prev: Option<std::process::ChildStdout> = None;
    for mut s in stages {
        match prev.take() {
            Some(p) => s.cmd.stdin(p),
            None => s.cmd.stdin(Stdio::null()),
        };
        let what = s.cmd.get_program().to_string_lossy().into_owned();
        let mut child = s
            .cmd
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        prev = child.stdout.take();
        upstream.push((what, child));
    }
    if let Some(p) = prev {
        last.cmd.stdin(p);
        last.keep_stdin = true;
    }
    let ran = last.run();
    for (what, mut child) in upstream {
        let st = child.wait().expect("wait");
        assert!(st.success(), "{what} failed in the pipeline ({st})");
    }
    ran
}
