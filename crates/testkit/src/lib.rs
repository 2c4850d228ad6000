//! Test helpers for the membudget workspace: where the shared sample data is, where the
//! built tool binaries are, and the external validators (Python with tifffile, laspy,
//! astropy, jpylyzer...) that check our results against code no one here wrote.
//!
//! Validators: `cargo xtask test` installs them into `target/venv` and sets
//! `MEMBUDGET_REQUIRE_VALIDATORS=1`, so a missing validator fails the test. Under plain
//! `cargo test` a test whose validator is missing prints `skipped: ...` and passes.

pub mod batch;
pub mod cmd;
pub mod rng;
pub use cmd::{cmd, pipe, run_in, run_tool, tool, Cmd, Ran};
pub use rng::Rng;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;
pub use tempfile::TempDir;

/// The workspace root (the directory holding the root `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    while !dir.join(".cargo").is_dir() || !dir.join("Cargo.toml").is_file() {
        if !dir.pop() {
            panic!(
                "workspace root not found above {}",
                env!("CARGO_MANIFEST_DIR")
            );
        }
    }
    dir
}

/// The sample data the tests use: `tests/data` in the repository (copied from the
/// project's shared sample set, with each file's source and licence in its README), or
/// `$MEMBUDGET_SHARED_DATA` when set. A fresh clone needs nothing beside it.
pub fn shared_data() -> PathBuf {
    if let Some(p) = std::env::var_os("MEMBUDGET_SHARED_DATA") {
        return PathBuf::from(p);
    }
    workspace_root().join("tests/data")
}

/// The optional, larger sample set beside the checkout (`../shared/data`), which may hold
/// files newer than the repository's copy.
pub fn extra_data() -> PathBuf {
    let p = workspace_root().join("../shared/data");
    p.canonicalize().unwrap_or(p)
}

/// A sample file, e.g. `data("tiff/rgb-3c-8b.tiff")`: from the repository's copy, else
/// from `../shared/data`.
pub fn data(rel: &str) -> PathBuf {
    let p = shared_data().join(rel);
    if p.exists() {
        return p;
    }
    let extra = extra_data().join(rel);
    assert!(
        extra.exists(),
        "sample file missing: {} (nor in {})",
        p.display(),
        extra.display()
    );
    extra
}

/// The path of a built binary of the workspace (`mem-estimate`...), building it once if
/// it is not there yet.
pub fn bin(name: &str) -> PathBuf {
    built(&["--bin", name], name)
}

/// The path of a built example of `package` (`examples/<name>.rs`), building it once.
/// `cargo test` builds examples only when no target filter (`--test x`) is given.
pub fn example(package: &str, name: &str) -> PathBuf {
    built(
        &["-p", package, "--example", name],
        &format!("examples/{name}"),
    )
}

/// Build with `cargo build <args>` once per test process, in the profile the tests run
/// in, and return `<profile dir>/<rel>`.
fn built(args: &[&str], rel: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    // Tests run from target/<profile>/deps/<test-binary>.
    let profile_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().and_then(Path::parent).map(Path::to_path_buf))
        .unwrap_or_else(|| target.join("debug"));
    let path = profile_dir.join(rel);
    static BUILT: OnceLock<std::sync::Mutex<Vec<String>>> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    if !built.iter().any(|b| b == rel) {
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.current_dir(workspace_root())
            .args(["build", "--quiet"])
            .args(args);
        if release {
            cmd.arg("--release");
        }
        let st = cmd.status().expect("cargo build");
        assert!(st.success(), "cargo build {args:?} failed");
        built.push(rel.to_string());
    }
    path
}

/// Whether validator tests must run (set by `cargo xtask test`).
pub fn validators_required() -> bool {
    std::env::var_os("MEMBUDGET_REQUIRE_VALIDATORS").is_some_and(|v| v == "1")
}

/// A Python interpreter that can import every module in `modules`, or `None` (after
/// printing why) when there is none and validators are not required. Panics when they
/// are required and missing.
pub fn python(modules: &[&str]) -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = std::env::var_os("MEMBUDGET_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain([workspace_root().join("target/venv/bin/python")])
        .collect();
    let import = format!(
        "import {}",
        if modules.is_empty() {
            "sys".into()
        } else {
            modules.join(", ")
        }
    );
    for py in candidates {
        if !py.exists() {
            continue;
        }
        let ok = Command::new(&py)
            .args(["-c", &import])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Some(py);
        }
    }
    let why = format!("no Python with {modules:?} (run `cargo xtask test` to install validators)");
    if validators_required() {
        panic!("{why}");
    }
    eprintln!("skipped: {why}");
    None
}

/// The usual fixture of a validator test: [`python`] with `modules` and a fresh
/// temporary directory for the files it writes and reads; `None` as [`python`] says.
pub fn python_and_tempdir(modules: &[&str]) -> Option<(PathBuf, TempDir)> {
    python(modules).map(|py| (py, tempdir()))
}

/// Run a Python snippet with arguments; panics with its stderr if it fails. Returns stdout.
pub fn run_python(py: &Path, code: &str, args: &[&str]) -> String {
    let out = Command::new(py)
        .arg("-c")
        .arg(code)
        .args(args)
        .output()
        .expect("run python");
    check(&out, "python");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run a Python snippet over `files` (as arguments) that prints one JSON record per
/// file; returns the records, checked to be one per file.
pub fn python_records(py: &Path, code: &str, files: &[PathBuf]) -> Vec<serde_json::Value> {
    let args: Vec<&str> = files
        .iter()
        .map(|p| p.to_str().expect("utf-8 path"))
        .collect();
    let records = ndjson(run_python(py, code, &args).as_bytes());
    assert_eq!(records.len(), files.len(), "one record per file");
    records
}

/// Panic with the command's stderr unless it succeeded.
pub fn check(out: &Output, what: &str) {
    check_parts(&out.status, &out.stdout, &out.stderr, what);
}

fn check_parts(status: &std::process::ExitStatus, stdout: &[u8], stderr: &[u8], what: &str) {
    assert!(
        status.success(),
        "{what} failed ({status}):\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(stdout),
        String::from_utf8_lossy(stderr)
    );
}

/// Parse NDJSON output into JSON values.
pub fn ndjson(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad NDJSON line {l:?}: {e}")))
        .collect()
}

/// A fresh temporary directory.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// Run `program` with `args`, feeding `stdin`, and collect its output.
pub fn run_stdin(program: &Path, args: &[&str], stdin: &str) -> Output {
    cmd(program).args(args).stdin(stdin).run().output()
}

/// As [`run_stdin`], with arguments and stdin as bytes (paths need not be UTF-8).
pub fn run_bytes<A: AsRef<std::ffi::OsStr>>(program: &Path, args: &[A], stdin: &[u8]) -> Output {
    cmd(program).args(args).stdin(stdin).run().output()
}

/// As [`run_stdin`], but a run that has not ended after `bound` is killed and the test
/// panics: for inputs that could make a tool hang (FIFOs, hostile files). A hang guard,
/// generous on purpose, not a speed requirement.
pub fn run_bounded(program: &Path, args: &[&str], stdin: &str, bound: Duration) -> Output {
    cmd(program)
        .args(args)
        .stdin(stdin)
        .bound(bound)
        .run()
        .output()
}

/// Run `cmd` (its stdin as the caller set it up), collect its output, and measure its
/// peak RSS in bytes (see [`Ran::peak_rss`]).
pub fn run_peak(cmd: Command) -> (Output, u64) {
    let ran = Cmd::from(cmd).keep_stdin().run();
    let peak = ran.peak_rss;
    (ran.output(), peak)
}

/// Held for the whole body of a test that asserts on a child's peak RSS, and of the
/// tests beside it in the same binary that hold much memory (decoded outputs): Linux
/// folds this test process's RSS at spawn into the child's `ru_maxrss` (see
/// [`Ran::peak_is_own`]), so another test decoding images at that moment would be
/// charged to the child. A test that panicked while holding it leaves it usable.
pub fn measuring() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Run the workspace binary `name` with `args`, its stdin the file `dir/stdin.ndjson`
/// holding `stdin` (so the end of the stream is there at once, as from a redirected
/// file); records, exit code, wall seconds and peak RSS (as [`run_peak`]).
pub fn run_stdin_file(
    name: &str,
    args: &[&str],
    stdin: &str,
    dir: &Path,
) -> (Vec<serde_json::Value>, i32, f64, u64) {
    let list = dir.join("stdin.ndjson");
    std::fs::write(&list, stdin).unwrap();
    let mut cmd = Command::new(bin(name));
    cmd.args(args).stdin(std::process::Stdio::from(
        std::fs::File::open(&list).unwrap(),
    ));
    let t = std::time::Instant::now();
    let (out, peak) = run_peak(cmd);
    let wall = t.elapsed().as_secs_f64();
    (
        ndjson(&out.stdout),
        out.status.code().unwrap_or(-1),
        wall,
        peak,
    )
}

/// A command running `program` as an unprivileged user (`nobody`, through `setpriv`)
/// when the tests run as root, who reads every file whatever its mode: permission
/// errors then happen for real. The files it needs must be readable by others.
pub fn unprivileged(program: impl AsRef<std::ffi::OsStr>) -> Command {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the effective user of this process.
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if root {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// Run `cmd` with piped stdio, feeding `stdin`, and collect its output.
pub fn run_cmd(cmd: Command, stdin: &str) -> Output {
    Cmd::from(cmd).stdin(stdin).run().output()
}

/// A minimal JPEG 2000 codestream main header (SOC, SIZ, COD, QCD, SOT) of a `w` x `h`
/// image in `tile` x `tile` tiles with `comps` 8-bit components. COD: SOP and EPH
/// markers, RPCL order, 3 layers, MCT, 5 decomposition levels, 64x64 code blocks, 5-3
/// wavelet. For probe tests and hostile variants of them.
pub fn j2k_codestream(w: u32, h: u32, tile: u32, comps: u16) -> Vec<u8> {
    let mut v = vec![0xFF, 0x4F, 0xFF, 0x51];
    v.extend_from_slice(&(38 + 3 * comps).to_be_bytes());
    v.extend_from_slice(&0u16.to_be_bytes());
    for x in [w, h, 0, 0, tile, tile, 0, 0] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v.extend_from_slice(&comps.to_be_bytes());
    for _ in 0..comps {
        v.extend_from_slice(&[7, 1, 1]);
    }
    v.extend_from_slice(&[0xFF, 0x52, 0, 12, 6, 2, 0, 3, 1, 5, 4, 4, 0, 1]);
    v.extend_from_slice(&[0xFF, 0x5C, 0, 4, 0x40, 0x48]);
    v.extend_from_slice(&[0xFF, 0x90, 0, 10, 0, 0, 0, 0, 0, 14, 0, 1]);
    v
}

/// Write an uncompressed 8-bit little-endian TIFF of `pages` pages of `width` x `height`
/// pixels and `samples` samples (1 grey, 3 RGB), in strips of `rows_per_strip` rows,
/// without writing its pixels: the file is sparse and reads as zeros, so a 16000 x 16000
/// page costs a few bytes of disk and no time. When the pixels would pass the 4 GiB a
/// classic TIFF can address, every strip points at the same zeros (the file is still
/// readable: strips may share bytes).
pub fn sparse_tiff(
    path: &Path,
    (width, height): (u32, u32),
    samples: u16,
    rows_per_strip: u32,
    pages: usize,
) {
    let rps = rows_per_strip.clamp(1, height);
    let strips = height.div_ceil(rps);
    let strip = u64::from(width) * u64::from(rps) * u64::from(samples);
    let strip = u32::try_from(strip).expect("a strip under 4 GiB");
    let entry = |tag: u16, typ: u16, count: u32, value: u32| {
        let mut e = Vec::with_capacity(12);
        e.extend_from_slice(&tag.to_le_bytes());
        e.extend_from_slice(&typ.to_le_bytes());
        e.extend_from_slice(&count.to_le_bytes());
        e.extend_from_slice(&value.to_le_bytes());
        e
    };
    const ENTRIES: u16 = 10;
    // Per page: the IFD, BitsPerSample (4 shorts), then the offset and count arrays.
    let arrays = if strips > 1 { 8 * strips } else { 0 };
    let page_len = 2 + 12 * u32::from(ENTRIES) + 4 + 8 + arrays;
    let data_at = 8 + page_len * pages as u32;
    let page_bytes = u64::from(strip) * u64::from(strips);
    let shared = u64::from(data_at) + page_bytes * pages as u64 > u64::from(u32::MAX);
    let mut head = b"II*\0".to_vec();
    head.extend_from_slice(&8u32.to_le_bytes());
    for p in 0..pages as u32 {
        let ifd = 8 + p * page_len;
        let bits_at = ifd + 2 + 12 * u32::from(ENTRIES) + 4;
        let offsets_at = bits_at + 8;
        let counts_at = offsets_at + 4 * strips;
        let strip_at = |s: u32| {
            if shared {
                data_at
            } else {
                data_at + ((u64::from(p) * page_bytes) + u64::from(s) * u64::from(strip)) as u32
            }
        };
        head.extend_from_slice(&ENTRIES.to_le_bytes());
        head.extend(entry(256, 4, 1, width));
        head.extend(entry(257, 4, 1, height));
        if samples == 1 {
            head.extend(entry(258, 3, 1, 8));
        } else {
            head.extend(entry(258, 3, u32::from(samples), bits_at));
        }
        head.extend(entry(259, 3, 1, 1));
        head.extend(entry(262, 3, 1, if samples >= 3 { 2 } else { 1 }));
        if strips > 1 {
            head.extend(entry(273, 4, strips, offsets_at));
        } else {
            head.extend(entry(273, 4, 1, strip_at(0)));
        }
        head.extend(entry(277, 3, 1, u32::from(samples)));
        head.extend(entry(278, 4, 1, rps));
        if strips > 1 {
            head.extend(entry(279, 4, strips, counts_at));
        } else {
            head.extend(entry(279, 4, 1, strip));
        }
        head.extend(entry(284, 3, 1, 1));
        let next = if p + 1 < pages as u32 {
            ifd + page_len
        } else {
            0
        };
        head.extend_from_slice(&next.to_le_bytes());
        head.extend_from_slice(&[8, 0, 8, 0, 8, 0, 8, 0]);
        if strips > 1 {
            for s in 0..strips {
                head.extend_from_slice(&strip_at(s).to_le_bytes());
            }
            for s in 0..strips {
                let rows = rps.min(height - s * rps);
                let n = u64::from(width) * u64::from(rows) * u64::from(samples);
                head.extend_from_slice(&(n as u32).to_le_bytes());
            }
        }
    }
    let len = if shared {
        u64::from(data_at) + u64::from(strip)
    } else {
        u64::from(data_at) + page_bytes * pages as u64
    };
    std::fs::write(path, &head).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(len))
        .unwrap();
}

/// Every file below `dir` (recursively), by its path relative to `dir`, with its bytes:
/// to compare what two runs wrote.
pub fn files_under(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut found = std::collections::BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                found.insert(p.strip_prefix(dir).unwrap().to_path_buf(), bytes);
            }
        }
    }
    found
}

/// Assert that `a` and `b` hold the same files with the same bytes ([`files_under`]);
/// returns how many. `what` names the runs in the message.
pub fn assert_same_files(a: &Path, b: &Path, what: &str) -> usize {
    let (fa, fb) = (files_under(a), files_under(b));
    assert_eq!(
        fa.keys().collect::<Vec<_>>(),
        fb.keys().collect::<Vec<_>>(),
        "{what}: not the same files"
    );
    for (name, bytes) in &fa {
        assert!(fb[name] == *bytes, "{what}: {} differs", name.display());
    }
    fa.len()
}

/// The exact path a record names: its `path_bytes` decoded by coreutils' `base64 -d`
/// (a decoder no one here wrote) when the record has them, else its `path`.
pub fn record_path(r: &serde_json::Value) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    match r.get("path_bytes").and_then(|b| b.as_str()) {
        Some(b64) => {
            let mut cmd = Command::new("base64");
            cmd.arg("-d");
            let out = run_cmd(cmd, b64);
            check(&out, "base64 -d");
            PathBuf::from(std::ffi::OsString::from_vec(out.stdout))
        }
        None => PathBuf::from(r["path"].as_str().expect("string path")),
    }
}

/// A file name that is not UTF-8: `stem` + Latin-1 e-acute (byte 0xE9) + `ext`.
pub fn latin1_name(stem: &str, ext: &str) -> std::ffi::OsString {
    use std::os::unix::ffi::OsStringExt;
    std::ffi::OsString::from_vec([stem.as_bytes(), b"\xe9", ext.as_bytes()].concat())
}
