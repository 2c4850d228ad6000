//! The per-input error boundary: a panic while one input is processed (in this thread,
//! a rayon worker or a helper thread) becomes that input's error record, kind
//! `internal`, and the run goes on with the next input.
//!
//! While an input is inside [`catch`], the panic hook keeps the panic's message and
//! location for the record instead of printing them (the record's stderr line says it
//! once); outside, panics print as usual.

use membudget::{Error, ErrorKind};
use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once};

/// Inputs being processed inside [`catch`] (0 or 1: inputs run one at a time).
static INSIDE: AtomicUsize = AtomicUsize::new(0);
/// The last panic seen inside, `message at file:line`.
static LAST: Mutex<Option<String>> = Mutex::new(None);

/// Install the panic hook (once per process).
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if INSIDE.load(Ordering::SeqCst) == 0 {
                return default(info);
            }
            let at = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            if let Ok(mut last) = LAST.lock() {
                *last = Some(format!("{}{at}", payload_text(info.payload())));
            }
        }));
    });
}

fn payload_text(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-text payload".to_string()
    }
}

/// The error a caught panic becomes: its message and where it happened.
pub fn panic_error(payload: Box<dyn Any + Send>) -> Error {
    let seen = LAST.lock().ok().and_then(|mut l| l.take());
    let what = seen.unwrap_or_else(|| payload_text(payload.as_ref()));
    Error::new(ErrorKind::Internal, format!("panic: {what}"))
}

/// Run `f` for one input; a panic in it becomes an `internal` error.
pub fn catch<T>(f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    INSIDE.fetch_add(1, Ordering::SeqCst);
    // Whatever `f` left half-done is dropped during the unwind (temp files and the
    // scratch directory remove themselves); nothing it touched is used afterwards.
    let r = panic::catch_unwind(AssertUnwindSafe(f));
    INSIDE.fetch_sub(1, Ordering::SeqCst);
    r.unwrap_or_else(|p| Err(panic_error(p)))
}

/// A helper thread's result once joined: its panic as an `internal` error.
pub fn joined<T>(r: std::thread::Result<T>) -> Result<T, Error> {
    r.map_err(panic_error)
}

/// Test builds only: panic here when `LAZ_ENRICH_FAILPOINT` is `NAME@TEXT` and the
/// input's path contains TEXT, so tests can check that a real panic anywhere in the
/// pipeline (a helper thread, a rayon worker) becomes that input's record.
#[track_caller]
pub fn failpoint(name: &str, input: &std::path::Path) {
    if cfg!(debug_assertions) {
        if let Ok(v) = std::env::var("LAZ_ENRICH_FAILPOINT") {
            if let Some((n, text)) = v.split_once('@') {
                if n == name && input.to_string_lossy().contains(text) {
                    panic!("failpoint {name}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_internal_error_naming_it() {
        install();
        let e = catch(|| -> Result<(), Error> { panic!("boom {}", 7) }).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Internal);
        assert!(e.message.contains("boom 7"), "{}", e.message);
        assert!(e.message.contains("boundary.rs"), "{}", e.message);
        let e = catch(|| {
            std::thread::scope(|s| joined(s.spawn(|| -> u32 { panic!("in a helper") }).join()))
        })
        .unwrap_err();
        assert!(e.message.contains("in a helper"), "{}", e.message);
        assert_eq!(catch(|| Ok(3)).unwrap(), 3);
    }
}
