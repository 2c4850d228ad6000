//! The fuzz targets without libFuzzer, on any toolchain: what CI runs.
//!
//! `stable [--seconds S] [--seed N] [TARGET...]`: for each target, replay every file of
//! `regressions/<target>/` (crashes found before, fixed since), then every seed (files
//! of tests/data and ../shared/data with the target's extensions, and `corpus/<target>/`
//! when cargo-fuzz left one), then mutants of the seeds until S seconds have passed. Not
//! coverage-guided (that is `cargo +nightly fuzz run`); the mutations are the usual
//! libFuzzer-style byte edits and splices.
//!
//! A panic is caught, its input saved as `artifacts/<target>/crash-<hash>` and the run
//! goes on; an input that runs past 20 s is saved as `timeout-<hash>` and ends the
//! process; an allocation past the 4 GiB address-space limit aborts the process, with
//! the input in `artifacts/<target>/current`. Exit 1 when anything was found.

use membudget_fuzz::{Target, TARGETS};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const INPUT_TIMEOUT: Duration = Duration::from_secs(20);
const MAX_SEED_BYTES: u64 = 1 << 20;

/// xorshift64*: small, seeded, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn here() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Seed files for `t`: by extension below tests/data and ../shared/data, plus its
/// corpus directory.
fn seeds(t: &Target) -> Vec<Vec<u8>> {
    let root = here().join("..");
    let mut dirs = vec![root.join("tests/data"), root.join("../shared/data")];
    dirs.push(here().join("corpus").join(t.name));
    let mut files = Vec::new();
    for d in dirs {
        walk(&d, &mut files);
    }
    let corpus = here().join("corpus").join(t.name);
    files.retain(|f| {
        f.starts_with(&corpus)
            || f.extension()
                .map(|e| e.to_string_lossy().to_ascii_lowercase())
                .is_some_and(|e| t.seeds.contains(&e.as_str()))
    });
    files.sort();
    files.dedup();
    let mut out: Vec<Vec<u8>> = files
        .iter()
        .filter(|f| std::fs::metadata(f).is_ok_and(|m| m.len() <= MAX_SEED_BYTES))
        .filter_map(|f| std::fs::read(f).ok())
        .collect();
    if t.name == "manifest" {
        // No .ndjson files among the samples: records as the tools write them.
        for line in [
            r#"{"path":"a.tif","schema":1,"image":{"width":10,"height":10,"bands":3,"bits":8}}"#,
            r#"{"path":"x","error":{"kind":"corrupt","message":"bad"},"laz-enrich":{"status":"error"}}"#,
            r#"{"path":"\u00e9\ud83d\ude00","plan":{"budget_bytes":67108864,"tile":[1024,1024]}}"#,
            "plain/path.tif",
        ] {
            out.push(line.as_bytes().to_vec());
        }
    }
    if out.is_empty() {
        out.push(Vec::new());
    }
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

const INTERESTING: [u64; 12] = [
    0,
    1,
    0x7F,
    0x80,
    0xFF,
    0x7FFF,
    0x8000,
    0xFFFF,
    0x7FFF_FFFF,
    0x8000_0000,
    0xFFFF_FFFF,
    u64::MAX,
];

/// One libFuzzer-style edit.
fn mutate(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8]) {
    let len = data.len();
    match rng.below(9) {
        0 if len > 0 => {
            let i = rng.below(len);
            data[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            data[i] = rng.next() as u8;
        }
        2 if len > 0 => {
            // A boundary value, 1, 2, 4 or 8 bytes, either byte order.
            let v = INTERESTING[rng.below(INTERESTING.len())];
            let w = [1usize, 2, 4, 8][rng.below(4)];
            let i = rng.below(len);
            let bytes = if rng.below(2) == 0 {
                v.to_le_bytes()
            } else {
                (v << (64 - 8 * w as u32).min(63)).to_be_bytes()
            };
            let n = w.min(len - i);
            data[i..i + n].copy_from_slice(&bytes[..n]);
        }
        3 if len > 0 => data.truncate(rng.below(len)),
        4 if len > 1 => {
            let a = rng.below(len);
            let b = (a + 1 + rng.below(64)).min(len);
            data.drain(a..b);
        }
        5 if len > 0 => {
            let a = rng.below(len);
            let b = (a + 1 + rng.below(256)).min(len);
            let chunk = data[a..b].to_vec();
            let at = rng.below(len);
            data.splice(at..at, chunk);
        }
        6 => {
            let at = rng.below(len + 1);
            let n = 1 + rng.below(16);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            data.splice(at..at, bytes);
        }
        7 if !other.is_empty() => {
            // Splice: a head of this input and a tail of another.
            let a = rng.below(len + 1);
            let b = rng.below(other.len());
            data.truncate(a);
            data.extend_from_slice(&other[b..]);
        }
        _ if len > 0 => {
            // Copy a chunk over another place of the same input.
            let a = rng.below(len);
            let n = (1 + rng.below(32)).min(len - a);
            let to = rng.below(len - n + 1);
            let chunk = data[a..a + n].to_vec();
            data[to..to + n].copy_from_slice(&chunk);
        }
        _ => data.push(rng.next() as u8),
    }
}

fn hash(data: &[u8]) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    data.hash(&mut h);
    format!("{:016x}", h.finish())
}

/// The input being run and since when, for the watchdog.
static STARTED_MS: AtomicU64 = AtomicU64::new(0);
static CURRENT: Mutex<Option<(String, Vec<u8>)>> = Mutex::new(None);

fn now_ms(t0: Instant) -> u64 {
    t0.elapsed().as_millis() as u64 + 1
}

fn artifacts(target: &str) -> PathBuf {
    let d = here().join("artifacts").join(target);
    let _ = std::fs::create_dir_all(&d);
    d
}

fn main() {
    let mut seconds = 10.0f64;
    let mut seed = 1u64;
    let mut names = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--seconds S")
            }
            "--seed" => seed = args.next().and_then(|v| v.parse().ok()).expect("--seed N"),
            "--list" => {
                for t in TARGETS {
                    println!("{}", t.name);
                }
                return;
            }
            n => names.push(n.to_string()),
        }
    }
    let targets: Vec<&Target> = TARGETS
        .iter()
        .filter(|t| names.is_empty() || names.iter().any(|n| n == t.name))
        .collect();
    if targets.is_empty() {
        eprintln!("stable: no such target: {names:?} (--list)");
        std::process::exit(2);
    }
    // SAFETY: setrlimit with a valid struct; affects this process only.
    unsafe {
        let lim = libc::rlimit {
            rlim_cur: 4 << 30,
            rlim_max: 4 << 30,
        };
        libc::setrlimit(libc::RLIMIT_AS, &lim);
    }
    // Panics are counted and saved, not printed in full for every input.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let at = info.location().map(|l| l.to_string()).unwrap_or_default();
        eprintln!("  panicked at {at}: {msg}");
    }));
    let t0 = Instant::now();
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(500));
        let s = STARTED_MS.load(Ordering::Relaxed);
        if s != 0 && now_ms(t0).saturating_sub(s) > INPUT_TIMEOUT.as_millis() as u64 {
            if let Some((target, data)) = CURRENT.lock().ok().and_then(|c| c.clone()) {
                let p = artifacts(&target).join(format!("timeout-{}", hash(&data)));
                let _ = std::fs::write(&p, &data);
                eprintln!(
                    "stable: {target}: an input ran past {INPUT_TIMEOUT:?}: {}",
                    p.display()
                );
            }
            std::process::exit(1);
        }
    });

    let mut found = 0usize;
    println!(
        "{:<14} {:>7} {:>7} {:>8} {:>7}",
        "target", "seeds", "regress", "inputs", "crashes"
    );
    for t in targets {
        let seeds = seeds(t);
        let mut regressions = Vec::new();
        walk(&here().join("regressions").join(t.name), &mut regressions);
        regressions.sort();
        let regressions: Vec<Vec<u8>> = regressions
            .iter()
            .filter_map(|p| std::fs::read(p).ok())
            .collect();
        let current = artifacts(t.name).join("current");
        // Its own stream per target; xorshift needs a state that is not zero.
        let name_hash = u64::from_str_radix(&hash(t.name.as_bytes()), 16).unwrap_or(1);
        let mut rng = Rng((seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ name_hash) | 1);
        let mut crashes = 0usize;
        let mut inputs = 0u64;
        let run = |data: &[u8], crashes: &mut usize| {
            // Kept on disk for an abort (out of memory) that no handler sees.
            let _ = std::fs::write(&current, data);
            *CURRENT.lock().unwrap() = Some((t.name.to_string(), data.to_vec()));
            STARTED_MS.store(now_ms(t0), Ordering::Relaxed);
            let r = std::panic::catch_unwind(|| (t.run)(data));
            STARTED_MS.store(0, Ordering::Relaxed);
            if r.is_err() {
                *crashes += 1;
                let p = artifacts(t.name).join(format!("crash-{}", hash(data)));
                let _ = std::fs::write(&p, data);
                eprintln!("stable: {}: crash saved as {}", t.name, p.display());
            }
        };
        for d in regressions.iter().chain(&seeds) {
            run(d, &mut crashes);
            inputs += 1;
        }
        let deadline = Instant::now() + Duration::from_secs_f64(seconds);
        while Instant::now() < deadline {
            let mut data = seeds[rng.below(seeds.len())].clone();
            let other = &seeds[rng.below(seeds.len())];
            for _ in 0..1 + rng.below(4) {
                mutate(&mut rng, &mut data, other);
            }
            run(&data, &mut crashes);
            inputs += 1;
        }
        let _ = std::fs::remove_file(&current);
        println!(
            "{:<14} {:>7} {:>7} {:>8} {:>7}",
            t.name,
            seeds.len(),
            regressions.len(),
            inputs,
            crashes
        );
        found += crashes;
    }
    if found > 0 {
        std::process::exit(1);
    }
}
