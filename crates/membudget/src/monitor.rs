//! Measuring memory while running: current and peak RSS of this process, a child's peak
//! RSS and a background sampler. The budget is kept by planning (the cost models,
//! calibrated and held to measured peaks by each tool's tests), not by a runtime guard.
//!
//! - [`current_rss`], [`peak_rss`], [`reset_peak`]: this process, from `/proc/self`
//!   (`getrusage` for the peak elsewhere). Tools that process many files call
//!   [`reset_peak`] before each one so every record carries that file's own peak.
//! - [`run_measured`]: run a command and get its peak RSS, times and exit status from
//!   `wait4`, as benchmarks and tests need for our tools and the peers they are compared
//!   with.
//! - [`Sampler`]: a thread that reads RSS every few milliseconds, for a timeline maximum
//!   that does not depend on the kernel's high-water mark.
//!
//! All figures are bytes. RSS counts every resident page of the process: heap, stacks,
//! mapped files that were touched (memory maps count as they are read), shared libraries.

use std::fs::File;
use std::io::{self, Read};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Peak resident set size of this process in bytes: `VmHWM` from `/proc/self/status`
/// (since the start or the last [`reset_peak`]), or `getrusage`'s `ru_maxrss` (since the
/// start, not affected by [`reset_peak`]) where there is no `/proc`.
///
/// The kernel updates the high-water mark from approximate per-CPU counters, so it can
/// be a few pages (tens of KiB) below a [`current_rss`] read earlier; fine for budgets,
/// not for exact accounting.
pub fn peak_rss() -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| parse_status_field(&s, "VmHWM"))
        .or_else(|| rusage_maxrss(Who::SelfProcess))
}

/// Current resident set size of this process in bytes (`/proc/self/statm`, the same
/// figure as `VmRSS`). `None` where there is no `/proc`.
pub fn current_rss() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/statm").ok()?;
    parse_statm_resident(&text, page_size())
}

/// Reset this process's peak RSS (`VmHWM`) to its current RSS, so that the next
/// [`peak_rss`] reports the peak since now. Returns whether it worked: it needs Linux 4.0+
/// and a writable `/proc/self/clear_refs` (some sandboxes refuse it).
///
/// Writing `5` to `clear_refs` resets only the high-water mark; it does not touch page
/// tables, so it is cheap enough to call before every file.
pub fn reset_peak() -> bool {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/self/clear_refs")
        .and_then(|mut f| f.write_all(b"5"))
        .is_ok()
}

/// The largest peak RSS among the child processes this process has waited for (and
/// their own waited-for descendants), from `getrusage(RUSAGE_CHILDREN)`. A maximum,
/// never a sum.
pub fn children_peak_rss() -> Option<u64> {
    rusage_maxrss(Who::Children)
}

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`...) in bytes.
pub fn parse_status_field(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?.strip_prefix(':')?;
        crate::system::parse_kb(rest)
    })
}

/// The resident size of a `/proc/<pid>/statm` text (second field, in pages) in bytes.
pub fn parse_statm_resident(text: &str, page_size: u64) -> Option<u64> {
    let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    pages.checked_mul(page_size)
}

/// Make large blocks go back to the system when freed. glibc raises its mmap threshold
/// each time a large block is freed (up to 32 MiB), after which chunk-sized buffers come
/// from the heap and their freed pages stay resident: peak RSS then counts several
/// chunks' worth of dead buffers. A fixed threshold keeps every buffer above 1 MiB in
/// its own mapping, returned at once.
///
/// And one heap (arena) for every thread: glibc gives threads heaps of their own, each
/// keeping what was freed in it, so what one thread freed is resident while another
/// allocates afresh. laz-enrich at an 18 MiB budget peaked anywhere from 17.3 to 19.0 MB
/// with them (once over its budget), 17.2 to 17.5 MB with one, and at its default budget
/// 62 MB instead of 66 MB, no slower: the tools allocate their large buffers once (in
/// mappings, above), so a shared heap's lock is rarely taken. [`crate::cli::main`]
/// calls it for every tool.
///
/// # Safety
///
/// No other thread may exist yet: glibc's `mallopt` is MT-Unsafe (it changes the
/// parameters other threads' `malloc` reads without a lock).
pub(crate) unsafe fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: the caller guarantees that this is the only thread; M_MMAP_THRESHOLD
    // with 1 MiB and M_ARENA_MAX with 1 are valid parameters and values.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// The page size, read once.
fn page_size() -> u64 {
    static PAGE: OnceLock<u64> = OnceLock::new();
    *PAGE.get_or_init(|| {
        #[cfg(unix)]
        {
            // SAFETY: sysconf has no memory-safety preconditions.
            let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
            if p > 0 {
                return p as u64;
            }
        }
        4096
    })
}

enum Who {
    SelfProcess,
    Children,
}

/// The resource usage of this process or of its waited-for children.
#[cfg(unix)]
fn rusage(who: Who) -> Option<libc::rusage> {
    let who = match who {
        Who::SelfProcess => libc::RUSAGE_SELF,
        Who::Children => libc::RUSAGE_CHILDREN,
    };
    // SAFETY: rusage is plain data (integers), valid when zeroed.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes only the struct it is given, which lives on this stack.
    if unsafe { libc::getrusage(who, &mut ru) } != 0 {
        return None;
    }
    Some(ru)
}

#[cfg(unix)]
fn rusage_maxrss(who: Who) -> Option<u64> {
    rusage(who).map(|ru| maxrss_bytes(ru.ru_maxrss))
}

#[cfg(not(unix))]
fn rusage_maxrss(_who: Who) -> Option<u64> {
    None
}

/// User plus system CPU time of this process so far, all threads (0 where unknown):
/// for timings in `-v` logs.
pub fn cpu_seconds() -> f64 {
    #[cfg(unix)]
    if let Some(ru) = rusage(Who::SelfProcess) {
        return (timeval(ru.ru_utime) + timeval(ru.ru_stime)).as_secs_f64();
    }
    0.0
}

/// `ru_maxrss` is in kilobytes on Linux and the BSDs, in bytes on macOS.
#[cfg(unix)]
fn maxrss_bytes(v: libc::c_long) -> u64 {
    let v = v.max(0) as u64;
    if cfg!(target_vendor = "apple") {
        v
    } else {
        v.saturating_mul(1024)
    }
}

#[cfg(unix)]
fn timeval(tv: libc::timeval) -> Duration {
    Duration::from_secs(tv.tv_sec.max(0) as u64) + Duration::from_micros(tv.tv_usec.max(0) as u64)
}

/// What [`run_measured`] found out about one run of a command.
#[derive(Debug, Clone)]
pub struct Measured {
    /// The exit status.
    pub status: ExitStatus,
    /// Peak RSS of the process in bytes (`ru_maxrss` from `wait4`). This is the largest
    /// peak of the process itself and of the descendants it waited for (the kernel
    /// folds a reaped child's peak into its parent's as a maximum), never their sum: for
    /// `sh -c 'a | b'` it is max(sh, a, b), not what the pipeline held at once.
    ///
    /// It is never below [`Measured::floor_bytes`]; see there.
    pub peak_rss_bytes: u64,
    /// This process's own peak RSS just after the child started.
    ///
    /// A child starts life on this process's memory (shared until `exec` with the
    /// `vfork`-style spawn std uses, copied with `fork`), and when it calls `exec` Linux
    /// folds the high-water mark of that memory into the child's `ru_maxrss`. So the
    /// child's figure is at least this process's peak at spawn time: when
    /// `peak_rss_bytes` is above `floor_bytes` it is the child's own, when it equals it
    /// the child's own peak is only known to be at most that (see
    /// [`Measured::peak_is_own`]). Harnesses keep the floor low by holding little memory
    /// and, when their own high-water mark may be forgotten, by calling [`reset_peak`]
    /// before spawning. The figure can only be inflated this way, never understated.
    pub floor_bytes: u64,
    /// Whether it was killed at [`RunOptions::timeout`].
    pub timed_out: bool,
    /// Wall-clock time from spawn to exit.
    pub wall: Duration,
    /// User CPU time of the process and its waited-for descendants.
    pub user: Duration,
    /// System CPU time of the process and its waited-for descendants.
    pub sys: Duration,
    /// Everything written to stdout, when the command's stdout was piped.
    pub stdout: Option<Vec<u8>>,
    /// Everything written to stderr, when the command's stderr was piped.
    pub stderr: Option<Vec<u8>>,
}

impl Measured {
    /// Whether [`Measured::peak_rss_bytes`] is the child's own peak rather than the
    /// floor inherited from this process: it is above [`Measured::floor_bytes`] by more
    /// than the 1 MiB the kernel's high-water counters may be off by.
    pub fn peak_is_own(&self) -> bool {
        self.peak_rss_bytes > self.floor_bytes.saturating_add(1 << 20)
    }
}

/// Run `cmd` to completion and measure its peak RSS, wall time and CPU times.
///
/// Read [`Measured::floor_bytes`] before trusting a small peak: Linux charges this
/// process's own peak to the child.
///
/// The command's stdio is used as configured. Pipes the caller set up for stdout and
/// stderr are drained by threads (so a chatty child cannot block on a full pipe) and
/// returned in [`Measured::stdout`] / [`Measured::stderr`]; a piped stdin is closed at
/// once. If a descendant keeps a pipe open after the command exits, this waits for it.
///
/// The child is reaped with `wait4`, which returns its resource usage; std's
/// [`std::process::Child`] is then dropped without waiting (dropping never waits), so
/// the process is reaped exactly once.
pub fn run_measured(cmd: &mut Command) -> io::Result<Measured> {
    run(cmd, &RunOptions::default())
}

/// [`run_measured`] with stdout and stderr captured and stdin empty (`/dev/null`), as
/// [`Command::output`] does.
pub fn run_measured_capture(cmd: &mut Command) -> io::Result<Measured> {
    use std::process::Stdio;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    run(cmd, &RunOptions::default())
}

/// What [`run_measured_with`] does beyond the command's own configuration: the one
/// place that spawns, feeds, drains, times out and reaps a measured child, for tests,
/// benchmarks and the fuzz and reliability harnesses alike.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Bytes written to the child's stdin (made a pipe) from a thread, so a child that
    /// does not read cannot block us; then the pipe is closed. `None`: stdin as the
    /// command has it (a piped one is closed at once).
    pub stdin: Option<Vec<u8>>,
    /// SIGKILL the child when it is still running after this; [`Measured::timed_out`]
    /// says so.
    pub timeout: Option<Duration>,
    /// Kill the child's process group, not only the child (the command must put the
    /// child in its own group, e.g. `setpgid` in `pre_exec`), so a hang goes with
    /// everything it started.
    pub kill_group: bool,
    /// Most bytes kept of stdout and of stderr; the rest is read and dropped, so a
    /// chatty child never blocks on a full pipe. `None`: everything.
    pub keep: Option<usize>,
}

/// [`run_measured`] with stdin bytes, a time limit and an output cap ([`RunOptions`]).
pub fn run_measured_with(cmd: &mut Command, opts: &RunOptions) -> io::Result<Measured> {
    if opts.stdin.is_some() {
        cmd.stdin(std::process::Stdio::piped());
    }
    run(cmd, opts)
}

#[cfg(unix)]
fn run(cmd: &mut Command, opts: &RunOptions) -> io::Result<Measured> {
    use std::io::Write;
    use std::os::unix::process::ExitStatusExt;

    let start = Instant::now();
    let mut child = cmd.spawn()?;
    // `spawn` returns once the child has exec'd (or failed to), so the high-water mark
    // folded into the child's figure is at most what is read here.
    let floor_bytes = peak_rss().unwrap_or(0);
    let stdin = child.stdin.take();
    let writer = match (stdin, opts.stdin.clone()) {
        (Some(mut pipe), Some(data)) => Some(std::thread::spawn(move || {
            let _ = pipe.write_all(&data);
        })),
        _ => None,
    };
    let keep = opts.keep.unwrap_or(usize::MAX);
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        pipe.map(|mut p| {
            std::thread::spawn(move || {
                let mut kept = Vec::new();
                let mut buf = [0u8; 65536];
                loop {
                    match p.read(&mut buf) {
                        Ok(0) => return Ok(kept),
                        Ok(n) => {
                            let room = keep.saturating_sub(kept.len());
                            kept.extend_from_slice(&buf[..n.min(room)]);
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
            })
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );

    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data; wait4 fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // Without a time limit wait4 blocks; with one it polls, napping up to 20 ms.
    let flags = if opts.timeout.is_some() {
        libc::WNOHANG
    } else {
        0
    };
    let mut timed_out = false;
    let mut nap = Duration::from_millis(1);
    loop {
        // SAFETY: valid pointers to a c_int and a rusage owned by this frame; pid is our
        // own child, not reaped yet.
        let rc = unsafe { libc::wait4(pid, &mut status, flags, &mut ru) };
        if rc == pid {
            break;
        }
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
            continue;
        }
        if let Some(limit) = opts.timeout {
            if !timed_out && start.elapsed() >= limit {
                timed_out = true;
                let target = if opts.kill_group { -pid } else { pid };
                // SAFETY: kill(2) on our own unreaped child (or the group it leads), so
                // the id cannot belong to anyone else.
                unsafe { libc::kill(target, libc::SIGKILL) };
            }
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(20));
    }
    let wall = start.elapsed();
    drop(child);
    if let Some(w) = writer {
        let _ = w.join();
    }

    let join = |t: Option<JoinHandle<io::Result<Vec<u8>>>>| -> io::Result<Option<Vec<u8>>> {
        match t {
            None => Ok(None),
            Some(t) => t
                .join()
                .map_err(|_| io::Error::other("pipe reader thread panicked"))?
                .map(Some),
        }
    };
    Ok(Measured {
        status: ExitStatus::from_raw(status),
        peak_rss_bytes: maxrss_bytes(ru.ru_maxrss),
        floor_bytes,
        timed_out,
        wall,
        user: timeval(ru.ru_utime),
        sys: timeval(ru.ru_stime),
        stdout: join(out)?,
        stderr: join(err)?,
    })
}

#[cfg(not(unix))]
fn run(_cmd: &mut Command, _opts: &RunOptions) -> io::Result<Measured> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "measuring a child's peak RSS needs wait4 (Unix)",
    ))
}

/// What a [`Sampler`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SamplerReport {
    /// The largest RSS sampled, in bytes (0 when no sample could be read).
    pub max_rss_bytes: u64,
    /// How many samples were read.
    pub samples: u64,
}

#[derive(Debug, Default)]
struct SamplerState {
    max: AtomicU64,
    samples: AtomicU64,
}

/// A background thread that reads this process's RSS at a fixed interval and keeps the
/// maximum. Stops on [`Sampler::stop`] or when dropped.
///
/// Each sample is one `pread` of `/proc/self/statm` through a file kept open (no
/// allocation, no text beyond a few numbers), so sampling every few milliseconds costs
/// little. Spikes shorter than the interval can be missed: [`peak_rss`] is the exact
/// figure, the sampler is for a maximum over a window when the high-water mark cannot be
/// reset, and for watching progress.
#[derive(Debug)]
pub struct Sampler {
    state: Arc<SamplerState>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Sampler {
    /// The default interval between samples.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(50);

    /// Start sampling every [`Sampler::DEFAULT_INTERVAL`].
    pub fn start() -> Sampler {
        Sampler::with_interval(Self::DEFAULT_INTERVAL)
    }

    /// Start sampling every `interval` (at least 1 ms). The first sample is taken at once.
    pub fn with_interval(interval: Duration) -> Sampler {
        let interval = interval.max(Duration::from_millis(1));
        let state = Arc::new(SamplerState::default());
        let (tx, rx) = mpsc::channel::<()>();
        let st = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("rss-sampler".into())
            .spawn(move || {
                let Ok(file) = File::open("/proc/self/statm") else {
                    return;
                };
                let page = page_size();
                let sample = || {
                    if let Some(rss) = read_statm(&file, page) {
                        st.max.fetch_max(rss, Ordering::Relaxed);
                        st.samples.fetch_add(1, Ordering::Release);
                    }
                };
                sample();
                while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(interval) {
                    sample();
                }
                // One last look at the moment of stopping.
                sample();
            })
            .ok();
        Sampler {
            state,
            stop: Some(tx),
            thread,
        }
    }

    /// The largest RSS sampled so far, in bytes.
    pub fn max_rss(&self) -> u64 {
        self.state.max.load(Ordering::Relaxed)
    }

    /// How many samples were read so far.
    pub fn samples(&self) -> u64 {
        self.state.samples.load(Ordering::Acquire)
    }

    /// Stop the thread and report.
    pub fn stop(mut self) -> SamplerReport {
        self.halt();
        SamplerReport {
            max_rss_bytes: self.max_rss(),
            samples: self.samples(),
        }
    }

    fn halt(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            // The thread only reads a file and updates atomics; a panic there would be
            // a bug that the missing samples already show.
            let _ = t.join();
        }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.halt();
    }
}

#[cfg(unix)]
fn read_statm(file: &File, page: u64) -> Option<u64> {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 128];
    let n = file.read_at(&mut buf, 0).ok()?;
    parse_statm_resident(std::str::from_utf8(&buf[..n]).ok()?, page)
}

#[cfg(not(unix))]
fn read_statm(_file: &File, _page: u64) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_status_and_statm() {
        let status = "Name:\tcat\nVmPeak:\t  8000 kB\nVmHWM:\t    1024 kB\nVmRSS:\t     512 kB\n";
        assert_eq!(parse_status_field(status, "VmHWM"), Some(1024 * 1024));
        assert_eq!(parse_status_field(status, "VmRSS"), Some(512 * 1024));
        assert_eq!(parse_status_field(status, "VmSwap"), None);
        assert_eq!(parse_status_field("VmRSS:\tmany kB\n", "VmRSS"), None);
        assert_eq!(
            parse_statm_resident("765 420 391 5 0 123 0\n", 4096),
            Some(420 * 4096)
        );
        assert_eq!(parse_statm_resident("765\n", 4096), None);
        assert_eq!(parse_statm_resident("", 4096), None);
        assert_eq!(parse_statm_resident("1 18446744073709551615", 4096), None);
    }
}
