//! What a run may write, and what it leaves behind when killed.
//!
//! - [`Destinations`]: one run never writes over one of its inputs (same device and
//!   inode, whatever the flags), and never gives two inputs the same output.
//! - [`lock`]: an exclusive claim on a destination (`.<name>.lock` beside it, held with
//!   `flock`), so two runs writing into one directory never encode the same output: the
//!   second one sees who holds it and skips. The kernel drops the claim when its owner
//!   dies, however it dies.
//! - Temporary names carry their owner: `.<name>.<pid>-<boot>-<random>.part` for files
//!   being written, `.<prefix>.<pid>-<boot>-<random>.scratch` for scratch directories
//!   ([`temp_prefix`], [`scratch_dir`]), `<boot>` the first 8 hex digits of
//!   `/proc/sys/kernel/random/boot_id`. A later run that finds one whose owner is dead
//!   (another boot, or no such process) removes it ([`sweep`]): SIGKILL leaves litter
//!   only until the next run into that directory.

use crate::error::{Error, ErrorKind};

/// The rules above, for the tools' `--help` and man pages.
pub const OUTPUTS_HELP: &str = "\nOUTPUTS:\n  \
    An output is written as .<name>.<pid>-<boot>-<random>.part beside it and renamed \
    into place when complete. An output that is one of the run's inputs (same file, \
    whatever its name or the flags) is never written: that input gets an error record. \
    When two inputs of one run map to the same output (in/x.tif, in/x.tiff and in/x.TIF \
    all make x.jp2), the first keeps it and the later ones get an error record naming \
    it. While a run writes an output it holds .<name>.lock beside it (flock): another \
    run skips that output with status \"skipped\" and reason \"being written by another \
    run (pid N)\". A run killed outright (SIGKILL, power loss) leaves its .part files, \
    .scratch directories and .lock files; the next run writing into that directory \
    removes those whose owner is gone (another boot, or no such process). SIGINT, \
    SIGTERM and SIGHUP remove them at once.\n";
use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::{Component, Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// The first 8 hex digits of this boot's id (`0` x 8 when /proc does not say).
pub fn boot_id() -> &'static str {
    static BOOT: OnceLock<String> = OnceLock::new();
    BOOT.get_or_init(|| {
        let id: String = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .unwrap_or_default()
            .chars()
            .filter(char::is_ascii_hexdigit)
            .take(8)
            .collect();
        if id.len() == 8 {
            id
        } else {
            "00000000".into()
        }
    })
}

/// Free bytes for an unprivileged user on the file system holding `dir`, or its nearest
/// existing ancestor (a directory not made yet); `None` when statvfs fails.
pub fn free_space(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let mut d = dir.to_path_buf();
    while !d.as_os_str().is_empty() && !d.exists() && d.pop() {}
    if d.as_os_str().is_empty() {
        d = PathBuf::from(".");
    }
    let c = std::ffi::CString::new(d.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs is plain data, all-zero valid; the call fills it and `c` is a
    // valid C string.
    unsafe {
        let mut s: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut s) != 0 {
            return None;
        }
        Some((s.f_bavail as u64).saturating_mul(s.f_frsize as u64))
    }
}

/// Refuse, before writing anything, work whose `need` bytes of `what` (temporary files,
/// an archive's new copy) do not fit in `dir`'s free space: a clear error instead of a
/// failure half-way with ENOSPC. Unknown free space lets the work go on.
pub fn ensure_free_space(dir: &Path, need: u64, what: &str) -> Result<(), Error> {
    match free_space(dir) {
        Some(free) if free < need => Err(Error::new(
            ErrorKind::Io,
            format!(
                "not enough disk space for {what} in {}: about {} needed, {} free",
                dir.display(),
                crate::budget::human_bytes(need),
                crate::budget::human_bytes(free)
            ),
        )),
        _ => Ok(()),
    }
}

/// The owner part of temporary names: `<pid>-<boot>-`.
fn owner_tag() -> String {
    format!("{}-{}-", std::process::id(), boot_id())
}

/// The prefix of a temporary named after `name` for this process:
/// `.<name>.<pid>-<boot>-` (tempfile adds the random part and the suffix).
pub fn temp_prefix(name: &str) -> String {
    format!(".{name}.{}", owner_tag())
}

/// Suffix of files being written.
pub const PART_SUFFIX: &str = ".part";
/// Suffix of scratch directories.
pub const SCRATCH_SUFFIX: &str = ".scratch";
/// Content that marks a lock file as ours (a sweep removes no other file).
const LOCK_MAGIC: &str = "membudget-lock";

/// A scratch directory in `parent` named for its owner
/// (`.<prefix>.<pid>-<boot>-<random>.scratch`), removed when dropped. Stale scratch
/// directories of dead owners in `parent` are removed first (see [`sweep`]).
pub fn scratch_dir(parent: &Path, prefix: &str) -> io::Result<tempfile::TempDir> {
    std::fs::create_dir_all(parent)?;
    sweep_once(parent);
    tempfile::Builder::new()
        .prefix(&temp_prefix(prefix))
        .suffix(SCRATCH_SUFFIX)
        .tempdir_in(parent)
}

/// The owner (pid, boot) written in a temporary's name, if it is one of ours.
fn owner_of(name: &str) -> Option<(u32, &str)> {
    let stem = name
        .strip_suffix(PART_SUFFIX)
        .or_else(|| name.strip_suffix(SCRATCH_SUFFIX))?;
    if !stem.starts_with('.') {
        return None;
    }
    let tag = &stem[stem.rfind('.')? + 1..];
    let mut parts = tag.splitn(3, '-');
    let pid: u32 = parts.next()?.parse().ok()?;
    let boot = parts.next()?;
    let random = parts.next()?;
    (boot.len() == 8 && boot.chars().all(|c| c.is_ascii_hexdigit()) && !random.is_empty())
        .then_some((pid, boot))
}

/// Whether the process that named a temporary is gone: another boot, or no such pid
/// now. A live pid of this boot counts as the owner (a reused pid only keeps litter).
fn owner_dead(pid: u32, boot: &str) -> bool {
    if boot != boot_id() {
        return true;
    }
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return true;
    };
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    let r = unsafe { libc::kill(pid, 0) };
    r != 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

/// Remove from `dir` the temporaries (`.part` files, `.scratch` directories) of dead
/// owners and lock files nobody holds. Returns what was removed. Other files are never
/// touched.
pub fn sweep(dir: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return removed;
    };
    for entry in rd.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        if let Some((pid, boot)) = owner_of(name) {
            if !owner_dead(pid, boot) {
                continue;
            }
            let gone = match entry.file_type() {
                Ok(t) if t.is_dir() => std::fs::remove_dir_all(&path),
                Ok(_) => std::fs::remove_file(&path),
                Err(e) => Err(e),
            };
            if gone.is_ok() {
                log::info!("removed {} left by a dead run (pid {pid})", path.display());
                removed.push(path);
            }
        } else if name.ends_with(".lock") && remove_free_lock(&path) {
            removed.push(path);
        }
    }
    removed
}

/// Sweep `dir` once per run.
fn sweep_once(dir: &Path) {
    static SWEPT: OnceLock<Mutex<HashSet<PathBuf>>> = OnceLock::new();
    let key = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let first = SWEPT
        .get_or_init(|| Mutex::new(HashSet::new()))
        .lock()
        .map(|mut s| s.insert(key))
        .unwrap_or(false);
    if first {
        sweep(dir);
    }
}

/// Remove a lock file of ours that no process holds.
fn remove_free_lock(path: &Path) -> bool {
    let Ok(mut f) = OpenOptions::new().read(true).write(true).open(path) else {
        return false;
    };
    let mut head = [0u8; 64];
    let n = f.read(&mut head).unwrap_or(0);
    if !head[..n].starts_with(LOCK_MAGIC.as_bytes()) || !try_flock(&f) {
        return false;
    }
    // Held now: unlink while holding, as the owner does on release.
    same_file(&f, path) && std::fs::remove_file(path).is_ok()
}

/// `flock(LOCK_EX | LOCK_NB)`: true when taken.
fn try_flock(f: &File) -> bool {
    // SAFETY: the descriptor is open for the call; flock has no other effect.
    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// Whether `f` is still the file at `path` (not unlinked and replaced meanwhile).
fn same_file(f: &File, path: &Path) -> bool {
    match (f.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// An exclusive claim on one destination: `.<name>.lock` beside it, flocked. Released
/// (the file removed) when dropped.
#[derive(Debug)]
pub struct Lock {
    file: File,
    path: PathBuf,
}

impl Lock {
    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Unlink while still holding: a run waiting on this file finds it unlinked after
        // taking it and starts over on a fresh one.
        if same_file(&self.file, &self.path) {
            let _ = std::fs::remove_file(&self.path);
        }
        crate::cli::forget_pending(&self.path);
    }
}

/// The result of [`lock`].
#[derive(Debug)]
pub enum Claim {
    /// This run holds the destination.
    Mine(Lock),
    /// Another live run holds it (its pid, when it wrote it already).
    Busy(Option<u32>),
}

impl Claim {
    /// The reason a record gives for skipping a busy destination.
    pub fn busy_reason(pid: Option<u32>) -> String {
        match pid {
            Some(p) => format!("being written by another run (pid {p})"),
            None => "being written by another run".into(),
        }
    }
}

/// The lock file of `dest`: `.<name>.lock` beside it.
pub fn lock_path(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    parent_dir(dest).join(format!(".{name}.lock"))
}

/// The directory of `dest` (`.` for a bare name).
pub(crate) fn parent_dir(dest: &Path) -> &Path {
    dest.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Claim `dest` for this run (creating its directory), sweeping stale temporaries from
/// that directory the first time. Never waits.
pub fn lock(dest: &Path) -> io::Result<Claim> {
    let dir = parent_dir(dest);
    std::fs::create_dir_all(dir)?;
    sweep_once(dir);
    let path = lock_path(dest);
    loop {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        if !try_flock(&file) {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(err);
            }
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let pid = text
                .strip_prefix(LOCK_MAGIC)
                .and_then(|t| t.split_whitespace().next())
                .and_then(|p| p.parse().ok());
            return Ok(Claim::Busy(pid));
        }
        if !same_file(&file, &path) {
            // Released and unlinked by its owner between our open and our flock.
            continue;
        }
        // On a full disk the open can create the file while the write fails: remove
        // what we created (we hold it) rather than leave an unmarked lock behind.
        let marked = file
            .set_len(0)
            .and_then(|()| writeln!(file, "{LOCK_MAGIC} {} {}", std::process::id(), boot_id()));
        if let Err(e) = marked {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        crate::cli::add_pending(&path);
        return Ok(Claim::Mine(Lock { file, path }));
    }
}

/// The outputs of one run: refuses a destination that is one of the run's inputs or the
/// output of an earlier input.
#[derive(Debug, Default)]
pub struct Destinations {
    inputs: HashSet<(u64, u64)>,
    outputs: HashMap<PathBuf, PathBuf>,
}

impl Destinations {
    /// An empty set.
    pub fn new() -> Destinations {
        Destinations::default()
    }

    /// Note `input` as an input of the run (by device and inode), so no output of the
    /// run may replace it.
    pub fn add_input(&mut self, input: &Path) {
        if let Ok(m) = std::fs::metadata(input) {
            self.inputs.insert((m.dev(), m.ino()));
        }
    }

    /// Check `dest` as the output of `input` (noting `input`): an error when `dest` is an
    /// input of this run (hard links and symlinks included: device and inode compared),
    /// or was already the output of an earlier input (`x.tif` and `x.TIF` both make
    /// `x.jp2`): the earlier input keeps it.
    pub fn check(&mut self, input: &Path, dest: &Path) -> Result<(), Error> {
        self.add_input(input);
        if let Ok(m) = std::fs::metadata(dest) {
            if self.inputs.contains(&(m.dev(), m.ino())) {
                return Err(Error::new(
                    ErrorKind::BadRecord,
                    format!(
                        "the output {} is an input of this run: never written over",
                        dest.display()
                    ),
                ));
            }
        }
        let key = absolute(dest);
        match self.outputs.get(&key) {
            Some(first) if first != input => Err(Error::new(
                ErrorKind::BadRecord,
                format!(
                    "the output {} is already the output of {} in this run",
                    dest.display(),
                    first.display()
                ),
            )),
            Some(_) => Ok(()),
            None => {
                self.outputs.insert(key, input.to_path_buf());
                Ok(())
            }
        }
    }
}

/// `p` made absolute and cleaned lexically (`.` and `dir/..` resolved), so `a/x` and
/// `./a/x` compare equal.
fn absolute(p: &Path) -> PathBuf {
    let full = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(p)
    };
    let mut out = PathBuf::new();
    for c in full.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_is_checked_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_space(dir.path()).expect("statvfs works here");
        assert!(free > 0);
        // A directory not made yet: its nearest existing ancestor answers.
        assert_eq!(
            free_space(&dir.path().join("a/b")).map(|f| f > 0),
            Some(true)
        );
        ensure_free_space(dir.path(), 1, "x").unwrap();
        let e = ensure_free_space(dir.path(), u64::MAX, "temporary files").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Io);
        assert!(
            e.message
                .contains("not enough disk space for temporary files"),
            "{e}"
        );
    }

    #[test]
    fn temporaries_name_their_owner() {
        let name = format!("{}abc123{PART_SUFFIX}", temp_prefix("x.jp2"));
        assert_eq!(owner_of(&name), Some((std::process::id(), boot_id())));
        assert_eq!(owner_of(".x.jp2.12-zzzzzzzz-a.part"), None);
        assert_eq!(owner_of("x.jp2.12-0123abcd-a.part"), None);
        assert_eq!(owner_of(".x.jp2.part"), None);
        assert!(!owner_dead(std::process::id(), boot_id()));
        assert!(owner_dead(std::process::id(), "ffffffff") || boot_id() == "ffffffff");
    }

    #[test]
    fn sweep_removes_only_dead_owners_litter() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // A pid that is surely dead: a child that has exited and been reaped.
        let dead = std::process::Command::new("true")
            .spawn()
            .and_then(|mut c| c.wait().map(|_| c.id()))
            .unwrap();
        let boot = boot_id();
        // Held first: claiming sweeps the directory once.
        let held = match lock(&d.join("held.jp2")).unwrap() {
            Claim::Mine(l) => l,
            Claim::Busy(_) => panic!("busy"),
        };
        let stale_part = d.join(format!(".a.jp2.{dead}-{boot}-q1w2e3.part"));
        let other_boot = d.join(format!(".b.jp2.{}-{}-q1w2e3.part", std::process::id(), {
            if boot == "00000000" {
                "11111111"
            } else {
                "00000000"
            }
        }));
        let stale_dir = d.join(format!(".laz.{dead}-{boot}-zz.scratch"));
        let live_part = d.join(format!("{}r4t5y6.part", temp_prefix("c.jp2")));
        let user = d.join(".mine.part");
        std::fs::write(&stale_part, b"x").unwrap();
        std::fs::write(&other_boot, b"x").unwrap();
        std::fs::create_dir(&stale_dir).unwrap();
        std::fs::write(stale_dir.join("pass0"), b"x").unwrap();
        std::fs::write(&live_part, b"x").unwrap();
        std::fs::write(&user, b"x").unwrap();
        // A lock left by a killed run (nobody holds it), and one not ours.
        let free_lock = d.join(".a.jp2.lock");
        std::fs::write(&free_lock, format!("{LOCK_MAGIC} {dead} {boot}\n")).unwrap();
        let foreign_lock = d.join(".index.lock");
        std::fs::write(&foreign_lock, b"git").unwrap();

        let mut removed = sweep(d);
        removed.sort();
        let mut want = vec![stale_part, other_boot, stale_dir, free_lock];
        want.sort();
        assert_eq!(removed, want);
        assert!(live_part.exists() && user.exists() && foreign_lock.exists());
        assert!(held.path().exists());
        drop(held);
        assert!(!d.join(".held.jp2.lock").exists());
    }

    #[test]
    fn a_held_destination_is_busy_with_its_owner() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("sub/out.jp2");
        let first = lock(&dest).unwrap();
        assert!(matches!(first, Claim::Mine(_)));
        // A second claim (as another run's, on its own open file) is refused.
        match lock(&dest).unwrap() {
            Claim::Busy(pid) => assert_eq!(pid, Some(std::process::id())),
            Claim::Mine(_) => panic!("claimed twice"),
        }
        drop(first);
        assert!(matches!(lock(&dest).unwrap(), Claim::Mine(_)));
    }

    #[test]
    fn destinations_refuse_inputs_and_collisions() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let src = d.join("x.jp2");
        std::fs::write(&src, b"tiff").unwrap();
        let mut dests = Destinations::new();
        let e = dests.check(&src, &src).unwrap_err();
        assert!(e.message.contains("is an input"), "{e}");
        // A hard link to an input is that input.
        let link = d.join("y.jp2");
        std::fs::hard_link(&src, &link).unwrap();
        assert!(dests.check(&d.join("y.tif"), &link).is_err());

        let out = d.join("out/in/x.jp2");
        dests.check(Path::new("in/x.tif"), &out).unwrap();
        dests.check(Path::new("in/x.tif"), &out).unwrap();
        let e = dests
            .check(Path::new("in/x.TIF"), &d.join("out/./in/x.jp2"))
            .unwrap_err();
        assert!(e.message.contains("in/x.tif"), "{e}");
    }
}
