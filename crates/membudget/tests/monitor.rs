//! The monitor against real memory: this process's RSS and peak, a child's peak from
//! `wait4`, the sampler and the guard, each checked against allocations of known size.
//!
//! The tests that read this process's RSS hold one lock: they run as threads of one
//! process, and another test freeing memory between two readings would hide an
//! allocation.

use membudget::monitor::{self, Sampler};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

const MIB: u64 = 1 << 20;

static RSS_LOCK: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    RSS_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// `bytes` of memory with every page written, so it is resident. Large enough for the
/// allocator to map it on its own, so dropping it gives it back to the kernel.
fn touched(bytes: u64) -> Vec<u8> {
    std::hint::black_box(vec![1u8; bytes as usize])
}

fn on_linux() -> bool {
    if monitor::current_rss().is_none() {
        eprintln!("skipped: no /proc/self/statm");
        return false;
    }
    true
}

#[test]
fn rss_and_peak_follow_an_allocation() {
    let _l = lock();
    if !on_linux() {
        return;
    }
    let before = monitor::current_rss().unwrap();
    let v = touched(64 * MIB);
    let during = monitor::current_rss().unwrap();
    assert!(
        during >= before + 60 * MIB,
        "RSS {before} -> {during} after touching 64 MiB"
    );
    let peak = monitor::peak_rss().unwrap();
    assert!(peak >= during, "peak {peak} below current {during}");
    drop(v);
    let after = monitor::current_rss().unwrap();
    assert!(
        after + 60 * MIB <= during,
        "RSS {during} -> {after} after freeing 64 MiB"
    );
    // The kernel records the high-water mark from per-CPU counters it does not sum
    // exactly, so it may sit a few pages below an RSS read earlier (~70 KiB seen on
    // Linux 6.18).
    let peak_after = monitor::peak_rss().unwrap();
    assert!(
        peak_after + MIB >= during,
        "peak {peak} -> {peak_after} after freeing; RSS was {during}"
    );
}

#[test]
fn reset_peak_forgets_a_freed_allocation() {
    let _l = lock();
    if !on_linux() {
        return;
    }
    drop(touched(64 * MIB));
    let high = monitor::peak_rss().unwrap();
    let now = monitor::current_rss().unwrap();
    assert!(high >= now + 60 * MIB, "peak {high}, current {now}");
    if !monitor::reset_peak() {
        eprintln!("skipped: /proc/self/clear_refs is not writable here");
        return;
    }
    let low = monitor::peak_rss().unwrap();
    assert!(
        low + 50 * MIB <= high,
        "peak {high} -> {low} after reset_peak"
    );
    // The peak counts again from here.
    let v = touched(32 * MIB);
    assert!(monitor::peak_rss().unwrap() >= low + 30 * MIB);
    drop(v);
}

/// Lower this process's peak so that it does not hide a child's (see
/// `Measured::floor_bytes`); false when the kernel refuses.
fn low_floor() -> bool {
    if monitor::reset_peak() {
        return true;
    }
    eprintln!("skipped: /proc/self/clear_refs is not writable, a child's peak may be ours");
    false
}

#[test]
fn child_peak_of_a_100_mib_buffer() {
    let _l = lock();
    let own = low_floor();
    // dd allocates its 100 MiB block and fills it from /dev/zero.
    let m = monitor::run_measured(Command::new("dd").args([
        "if=/dev/zero",
        "of=/dev/null",
        "bs=100M",
        "count=1",
        "status=none",
    ]))
    .expect("run dd");
    eprintln!("dd bs=100M: {m:?}");
    assert!(m.status.success(), "{:?}", m.status);
    assert!(m.peak_rss_bytes >= 100 * MIB, "{m:?}");
    if own {
        assert!(m.peak_is_own() && m.peak_rss_bytes < 200 * MIB, "{m:?}");
    }
    assert!(m.wall > Duration::ZERO);
    assert!(m.stdout.is_none() && m.stderr.is_none());
}

#[test]
fn child_peak_of_a_small_command() {
    let _l = lock();
    let own = low_floor();
    let m = monitor::run_measured(&mut Command::new("true")).expect("run true");
    eprintln!("true: {m:?}");
    assert!(m.status.success());
    assert!(m.peak_rss_bytes > 0);
    if own {
        assert!(m.peak_rss_bytes < 20 * MIB, "{m:?}");
    }
}

#[test]
fn a_big_parent_is_never_reported_as_the_child_s_own_peak() {
    let _l = lock();
    let v = touched(150 * MIB);
    let m = monitor::run_measured(&mut Command::new("true")).expect("run true");
    drop(v);
    eprintln!("true beside 150 MiB: {m:?}");
    assert!(
        m.floor_bytes >= 150 * MIB || monitor::peak_rss().is_none(),
        "{m:?}"
    );
    if m.peak_is_own() {
        assert!(m.peak_rss_bytes < 20 * MIB, "{m:?}");
    }
}

#[test]
fn child_peak_includes_the_grandchildren_it_waited_for() {
    let _l = lock();
    let own = low_floor();
    // The shell stays small; dd, its child, holds 100 MiB. The figure is the maximum.
    let m = monitor::run_measured(Command::new("sh").args([
        "-c",
        "dd if=/dev/zero of=/dev/null bs=100M count=1 status=none; true",
    ]))
    .expect("run sh");
    eprintln!("sh + dd: {m:?}");
    assert!(m.status.success());
    assert!(m.peak_rss_bytes >= 100 * MIB, "{m:?}");
    if own {
        assert!(m.peak_is_own() && m.peak_rss_bytes < 200 * MIB, "{m:?}");
    }
}

#[test]
fn capture_output_and_exit_status() {
    let m = monitor::run_measured_capture(Command::new("sh").args([
        "-c",
        "echo out; echo err >&2; head -c 300000 /dev/zero; exit 3",
    ]))
    .expect("run sh");
    assert_eq!(m.status.code(), Some(3));
    let out = m.stdout.expect("stdout captured");
    assert_eq!(&out[..4], b"out\n");
    // More than a pipe holds: the reader threads drained it while the child ran.
    assert_eq!(out.len(), 4 + 300_000);
    assert_eq!(m.stderr.as_deref(), Some(&b"err\n"[..]));
}

#[test]
fn a_missing_program_is_an_error() {
    let e = monitor::run_measured(&mut Command::new("/nonexistent/membudget-no-such-tool"))
        .expect_err("spawn must fail");
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
}

#[test]
fn sampler_sees_a_spike() {
    let _l = lock();
    if !on_linux() {
        return;
    }
    let before = monitor::current_rss().unwrap();
    let sampler = Sampler::with_interval(Duration::from_millis(2));
    let v = touched(64 * MIB);
    // Hold the memory until the sampler has looked at it twice.
    let seen = sampler.samples();
    let mut spins = 0u32;
    while sampler.samples() < seen + 2 {
        std::thread::sleep(Duration::from_millis(1));
        spins += 1;
        assert!(spins < 60_000, "sampler stopped sampling");
    }
    drop(v);
    let report = sampler.stop();
    assert!(report.samples >= 3, "{report:?}");
    assert!(
        report.max_rss_bytes >= before + 60 * MIB,
        "sampled max {} with RSS {before} before a 64 MiB spike",
        report.max_rss_bytes
    );
}
