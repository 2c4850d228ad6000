//! Ctrl-C, SIGTERM and SIGHUP: pending temporary files and scratch directories are
//! removed, then the process dies of the same signal.
use std::collections::HashSet;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

/// Temp files not yet renamed into place: removed on Ctrl-C, SIGTERM and SIGHUP.
pub(super) fn pending() -> &'static Mutex<HashSet<PathBuf>> {
    static PENDING: OnceLock<Mutex<HashSet<PathBuf>>> = OnceLock::new();
    PENDING.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Scratch directories: removed with their contents on Ctrl-C, SIGTERM and SIGHUP.
pub(super) fn pending_dirs() -> &'static Mutex<HashSet<PathBuf>> {
    static PENDING: OnceLock<Mutex<HashSet<PathBuf>>> = OnceLock::new();
    PENDING.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Have the scratch directory `dir` removed, with everything in it, when Ctrl-C,
/// SIGTERM or SIGHUP ends the run; [`unregister_temp_dir`] once it is gone.
pub fn register_temp_dir(dir: &Path) {
    if let Ok(mut p) = pending_dirs().lock() {
        p.insert(dir.to_path_buf());
    }
}

/// Undo [`register_temp_dir`].
pub fn unregister_temp_dir(dir: &Path) {
    if let Ok(mut p) = pending_dirs().lock() {
        p.remove(dir);
    }
}

pub(super) static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether Ctrl-C, SIGTERM or SIGHUP was received. The process ends by that signal as
/// soon as pending temporary files are removed, so this is rarely seen true.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// The signals that end a run early. Each removes the pending temporary files, then the
/// process dies of that same signal, so the shell, `make` or `xargs` sees how it ended
/// (status 130 for Ctrl-C, 143 for SIGTERM).
pub(super) const STOP_SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// A signal set holding `signals`.
pub(super) fn signal_set(signals: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it before any use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Whether `sig` is ignored, as `nohup` (SIGHUP) or a non-interactive shell's `&`
/// (SIGINT) leave it: such a signal must stay ignored.
pub(super) fn ignored(sig: libc::c_int) -> bool {
    // SAFETY: querying the current action only (no new action is installed).
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(sig, std::ptr::null(), &mut old) == 0 && old.sa_sigaction == libc::SIG_IGN
    }
}

/// Take SIGINT, SIGTERM and SIGHUP on a dedicated thread (`sigwait`), where removing
/// files and taking a lock is safe, unlike in an asynchronous signal handler. Written
/// with libc because the `ctrlc` crate does not say which signal came, and the exit
/// status must. Must run before the tool starts threads: they inherit the blocked mask.
/// Child processes do not (Rust's `Command` resets the mask in the child).
pub(super) fn install_interrupt_handler() {
    let wanted: Vec<libc::c_int> = STOP_SIGNALS.into_iter().filter(|&s| !ignored(s)).collect();
    if wanted.is_empty() {
        return;
    }
    let set = signal_set(&wanted);
    // SAFETY: `set` is initialised; blocking signals in this thread has no other effect.
    if unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) } != 0 {
        return;
    }
    let waiter = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || loop {
            let mut sig: libc::c_int = 0;
            // SAFETY: `set` and `sig` are valid for the call.
            if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                continue;
            }
            INTERRUPTED.store(true, Ordering::SeqCst);
            if let Ok(p) = pending().lock() {
                for path in p.iter() {
                    let _ = std::fs::remove_file(path);
                }
            }
            if let Ok(p) = pending_dirs().lock() {
                for dir in p.iter() {
                    // Renamed first: the tool's threads still create files in it by
                    // path, and one created after remove_dir_all listed the directory
                    // would leave it behind; after the rename their creates fail. A
                    // file already being created may still land: try again until gone.
                    let mut aside = dir.clone().into_os_string();
                    aside.push(".removing");
                    let gone = match std::fs::rename(dir, &aside) {
                        Ok(()) => PathBuf::from(aside),
                        Err(_) => dir.clone(),
                    };
                    for _ in 0..100 {
                        if std::fs::remove_dir_all(&gone).is_ok() || !gone.exists() {
                            break;
                        }
                    }
                }
            }
            die_of(sig);
        });
    if waiter.is_err() {
        // No thread to take them: let the signals act as they would have.
        // SAFETY: as above.
        unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
    }
}

/// End the process by `sig` with its default action (terminate), as if never caught.
pub(super) fn die_of(sig: libc::c_int) -> ! {
    let _ = io::stderr().flush();
    // SAFETY: restoring the default action and unblocking `sig` in this thread, then
    // sending it to this thread, which terminates the process.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        let one = signal_set(&[sig]);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &one, std::ptr::null_mut());
        libc::raise(sig);
    }
    // Not reached when the signal's default action terminates; the shell's convention
    // otherwise.
    std::process::exit(128 + sig)
}

/// Register a path for removal when a stop signal ends the run.
pub(crate) fn add_pending(path: &Path) {
    if let Ok(mut p) = pending().lock() {
        p.insert(path.to_path_buf());
    }
}

/// The path was removed or renamed into place: nothing to remove on a signal.
pub(crate) fn forget_pending(path: &Path) {
    if let Ok(mut p) = pending().lock() {
        p.remove(path);
    }
}
