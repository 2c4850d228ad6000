//! The machine as a budget sees it: RAM, swap, cgroup memory limit and usage, usable CPUs.
//!
//! [`SystemInfo::probe`] reads Linux's `/proc` and cgroup files (v1, v2 and the hybrid
//! layout where both are mounted); elsewhere it falls back to `sysconf` and
//! [`std::thread::available_parallelism`] and says so in [`SystemInfo::warnings`]. Every
//! parser takes the file's contents as `&str` (and the cgroup walk takes a root directory)
//! so that tests run them on fixture text and fake trees instead of this machine's files.
//!
//! The files are read by hand rather than through a crate such as `sysinfo`: we need
//! exactly five small files, the cgroup hierarchy walk (limits set on a parent apply to
//! every child) and v1's "no limit" sentinel, which is less code than adapting a general
//! crate's view of them.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What the machine can give a job. Serialised as the `system` section of a record
/// (`mem-estimate --system`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemInfo {
    /// Physical RAM in bytes.
    pub total_bytes: u64,
    /// Available RAM (`MemAvailable`: free memory plus what the kernel can reclaim
    /// without swapping) in bytes.
    pub available_bytes: u64,
    /// Swap size in bytes.
    pub swap_total_bytes: u64,
    /// Swap in use in bytes.
    pub swap_used_bytes: u64,
    /// The cgroup memory limit (v2 `memory.max` or v1 `memory.limit_in_bytes`), if one
    /// is set: the smallest limit of this process's cgroup and its ancestors.
    pub cgroup_limit_bytes: Option<u64>,
    /// The memory charged to this process's cgroup now (v2 `memory.current`, v1
    /// `memory.usage_in_bytes`), page cache included, when the file is readable.
    #[serde(default)]
    pub cgroup_usage_bytes: Option<u64>,
    /// What this process may still take under the cgroup limits: for each cgroup with a
    /// limit (this one and its ancestors), the limit less what is charged to it and
    /// cannot be reclaimed (usage less inactive page cache), this process's own RSS
    /// added back; the smallest. `None` without a limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_room_bytes: Option<u64>,
    /// The file the cgroup limit was read from, so a surprising limit can be traced.
    #[serde(default)]
    pub cgroup_limit_file: Option<PathBuf>,
    /// CPUs in this process's affinity mask (`sched_getaffinity`; cgroup cpusets show up
    /// here too).
    #[serde(default)]
    pub affinity_cpus: usize,
    /// The cgroup CPU quota in CPUs (v2 `cpu.max` or v1 `cpu.cfs_quota_us` over the
    /// period; smallest along the hierarchy), if one is set. May be fractional.
    #[serde(default)]
    pub cgroup_cpu_quota: Option<f64>,
    /// CPUs this process may use: the affinity count, capped by the CPU quota rounded up
    /// (a quota of 1.5 CPUs gives 2 workers that share 1.5 CPUs of time), at least 1.
    pub cpus: usize,
    /// Things a user should know about before trusting a plan (heavy swap, a cgroup
    /// nearly full, figures that could not be read). See [`SystemInfo::warnings`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl SystemInfo {
    /// Read the machine's state now. Never fails: what cannot be read is left at a
    /// conservative value and reported in [`SystemInfo::warnings`].
    pub fn probe() -> SystemInfo {
        let mut notes = Vec::new();
        let mem = match std::fs::read_to_string("/proc/meminfo")
            .ok()
            .as_deref()
            .and_then(parse_meminfo)
        {
            Some(m) => m,
            None => match sysconf_memory() {
                Some(m) => {
                    notes.push(
                        "no /proc/meminfo: available memory taken as free pages (sysconf)"
                            .to_string(),
                    );
                    m
                }
                None => {
                    notes.push("memory size unknown: no /proc/meminfo and no sysconf".into());
                    Meminfo::default()
                }
            },
        };
        let cg = read_cgroups(
            Path::new("/"),
            &std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default(),
            &std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default(),
        );
        let affinity_cpus = affinity_cpus();
        let mut sys = SystemInfo {
            total_bytes: mem.total,
            available_bytes: mem.available,
            swap_total_bytes: mem.swap_total,
            swap_used_bytes: mem.swap_total.saturating_sub(mem.swap_free),
            cgroup_limit_bytes: cg.memory_limit,
            cgroup_usage_bytes: cg.memory_usage,
            // Our own pages are charged already, and the budget counts them again.
            cgroup_room_bytes: cg
                .memory_room
                .map(|r| r.saturating_add(crate::monitor::current_rss().unwrap_or(0))),
            cgroup_limit_file: cg.memory_limit_file,
            affinity_cpus,
            cgroup_cpu_quota: cg.cpu_quota,
            cpus: combine_cpus(affinity_cpus, cg.cpu_quota),
            warnings: Vec::new(),
        };
        notes.extend(sys.derived_warnings());
        sys.warnings = notes;
        sys
    }

    /// A made-up machine, for tests and planning "what if": no swap, 2 CPUs.
    pub fn fixed(available_bytes: u64, cgroup_limit_bytes: Option<u64>) -> SystemInfo {
        SystemInfo {
            total_bytes: available_bytes,
            available_bytes,
            swap_total_bytes: 0,
            swap_used_bytes: 0,
            cgroup_limit_bytes,
            cgroup_usage_bytes: None,
            cgroup_room_bytes: None,
            cgroup_limit_file: None,
            affinity_cpus: 2,
            cgroup_cpu_quota: None,
            cpus: 2,
            warnings: Vec::new(),
        }
    }

    /// The memory a job can really have: the smallest of available RAM, the cgroup
    /// limit and the room left under it ([`SystemInfo::cgroup_room_bytes`]).
    ///
    /// The room subtracts what the cgroup's other processes hold, not its page cache:
    /// inactive file pages are reclaimed before anyone is killed, so counting them would
    /// understate what a job can get (often by most of the limit after reading big
    /// files).
    pub fn memory_limit(&self) -> u64 {
        let limit = match self.cgroup_limit_bytes {
            Some(c) => c.min(self.available_bytes),
            None => self.available_bytes,
        };
        self.cgroup_room_bytes.map_or(limit, |r| limit.min(r))
    }

    /// Swap more than half in use: plan one worker and warn.
    pub fn heavy_swap(&self) -> bool {
        self.swap_total_bytes > 0 && self.swap_used_bytes > self.swap_total_bytes / 2
    }

    /// The warnings recorded when the machine was probed (see the field of that name).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Warnings that follow from the figures themselves.
    fn derived_warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.heavy_swap() {
            w.push(format!(
                "swap {}% in use: planning one worker",
                percent(self.swap_used_bytes, self.swap_total_bytes)
            ));
        }
        if let (Some(limit), Some(usage)) = (self.cgroup_limit_bytes, self.cgroup_usage_bytes) {
            if limit > 0 && usage >= limit / 10 * 9 {
                w.push(format!(
                    "cgroup memory {}% in use ({} of {}, page cache included): \
                     other processes share this limit",
                    percent(usage, limit),
                    crate::units::human_bytes(usage),
                    crate::units::human_bytes(limit)
                ));
            }
        }
        w
    }
}

fn percent(part: u64, whole: u64) -> u64 {
    if whole == 0 {
        return 0;
    }
    (part as u128 * 100 / whole as u128) as u64
}

/// `cpus` from its two sources: the affinity count capped by the quota rounded up.
///
/// `std::thread::available_parallelism` does the same on Linux (affinity mask, then the
/// v1 or v2 quota) but rounds the quota down and does not expose the parts, which the
/// record shows separately; it is used here only when the affinity mask is unreadable.
fn combine_cpus(affinity: usize, quota: Option<f64>) -> usize {
    let mut cpus = affinity.max(1);
    if let Some(q) = quota {
        if q.is_finite() && q > 0.0 {
            cpus = cpus.min(q.ceil() as usize);
        }
    }
    cpus.max(1)
}

/// CPUs in this process's affinity mask.
fn affinity_cpus() -> usize {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // SAFETY: cpu_set_t is plain data (a bit array), valid when zeroed.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: sched_getaffinity writes at most the size it is given, that of `set`.
        let rc =
            unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
        if rc == 0 {
            // SAFETY: `set` was filled by the successful call above.
            let n = unsafe { libc::CPU_COUNT(&set) };
            if n > 0 {
                return n as usize;
            }
        }
        // More than 1024 CPUs (EINVAL with a fixed-size set): std sizes the set itself.
    }
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// The figures of `/proc/meminfo` that a budget needs, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Meminfo {
    /// `MemTotal`.
    pub total: u64,
    /// `MemAvailable`, or `MemFree + Buffers + Cached` on kernels before 3.14.
    pub available: u64,
    /// `SwapTotal`.
    pub swap_total: u64,
    /// `SwapFree`.
    pub swap_free: u64,
}

/// Parse `/proc/meminfo`. `None` when `MemTotal` is missing (not a meminfo file).
pub fn parse_meminfo(text: &str) -> Option<Meminfo> {
    let field = |name: &str| -> Option<u64> {
        text.lines().find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix(':')?;
            parse_kb(rest)
        })
    };
    let total = field("MemTotal")?;
    let available = field("MemAvailable").unwrap_or_else(|| {
        ["MemFree", "Buffers", "Cached"]
            .iter()
            .filter_map(|f| field(f))
            .fold(0u64, u64::saturating_add)
    });
    Some(Meminfo {
        total,
        available,
        swap_total: field("SwapTotal").unwrap_or(0),
        swap_free: field("SwapFree").unwrap_or(0),
    })
}

/// `"   24684084 kB"` to bytes (a bare number is taken as bytes).
pub(crate) fn parse_kb(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_suffix("kB") {
        Some(n) => n.trim().parse::<u64>().ok()?.checked_mul(1024),
        None => s.parse().ok(),
    }
}

/// Total and available memory from `sysconf`, where there is no `/proc/meminfo`.
#[cfg(not(unix))]
fn sysconf_memory() -> Option<Meminfo> {
    None
}

/// Total and available memory from `sysconf`, where there is no `/proc/meminfo`.
#[cfg(unix)]
fn sysconf_memory() -> Option<Meminfo> {
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    // SAFETY: as above.
    let pages = unsafe { libc::sysconf(libc::_SC_PHYS_PAGES) };
    if page <= 0 || pages <= 0 {
        return None;
    }
    let total = (page as u64).checked_mul(pages as u64)?;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let available = {
        // SAFETY: as above.
        let avail = unsafe { libc::sysconf(libc::_SC_AVPHYS_PAGES) };
        if avail > 0 {
            (page as u64).saturating_mul(avail as u64)
        } else {
            total
        }
    };
    // Elsewhere there is no portable free-page count; the total is the best bound known.
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let available = total;
    Some(Meminfo {
        total,
        available,
        swap_total: 0,
        swap_free: 0,
    })
}

/// A memory limit file's contents: `None` for no limit (`max`, v1's huge sentinel,
/// unreadable text).
///
/// v1 writes "no limit" as the largest page-aligned `i64` (9223372036854771712 with 4 KiB
/// pages, other values with other page sizes), so anything from 2^62 up is taken as none:
/// no machine has 4 EiB of RAM.
pub fn parse_memory_limit(text: &str) -> Option<u64> {
    let t = text.trim();
    if t == "max" {
        return None;
    }
    let v: u64 = t.parse().ok()?;
    (v < 1 << 62).then_some(v)
}

/// A memory usage file's contents (`memory.current`, `memory.usage_in_bytes`).
pub fn parse_memory_usage(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// The value of `key` in a cgroup `memory.stat` text (`key value` lines, bytes).
pub fn parse_stat_field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// cgroup v2 `cpu.max` (`"150000 100000"`, `"max 100000"`) in CPUs; `None` for no quota.
pub fn parse_cpu_max(text: &str) -> Option<f64> {
    let mut it = text.split_whitespace();
    let quota = it.next()?;
    let period: u64 = it.next().map_or(Some(100_000), |p| p.parse().ok())?;
    if quota == "max" || period == 0 {
        return None;
    }
    let quota: u64 = quota.parse().ok()?;
    Some(quota as f64 / period as f64)
}

/// cgroup v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us` in CPUs; `None` for no quota
/// (`-1`).
pub fn parse_cfs_quota(quota: &str, period: &str) -> Option<f64> {
    let quota: i64 = quota.trim().parse().ok()?;
    let period: i64 = period.trim().parse().ok()?;
    if quota <= 0 || period <= 0 {
        return None;
    }
    Some(quota as f64 / period as f64)
}

/// This process's cgroups, from `/proc/self/cgroup`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcCgroup {
    /// The v2 (unified) path, from the `0::/path` line.
    pub v2: Option<String>,
    /// The v1 hierarchies: controllers (`["cpu", "cpuacct"]`) and path.
    pub v1: Vec<(Vec<String>, String)>,
}

impl ProcCgroup {
    /// The v1 path of the hierarchy holding `controller`.
    pub fn v1_path(&self, controller: &str) -> Option<&str> {
        self.v1
            .iter()
            .find(|(c, _)| c.iter().any(|c| c == controller))
            .map(|(_, p)| p.as_str())
    }
}

/// Parse `/proc/self/cgroup` (`hierarchy-id:controllers:path` per line).
pub fn parse_proc_cgroup(text: &str) -> ProcCgroup {
    let mut out = ProcCgroup::default();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(ctl), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if id == "0" && ctl.is_empty() {
            out.v2 = Some(path.to_string());
        } else if !ctl.is_empty() {
            let ctls = ctl.split(',').map(str::to_string).collect();
            out.v1.push((ctls, path.to_string()));
        }
    }
    out
}

/// One cgroup file system mount, from `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    /// The cgroup path mounted there (`/` unless a container mounted a sub-tree).
    pub root: String,
    /// Where it is mounted (`/sys/fs/cgroup`, `/sys/fs/cgroup/memory`).
    pub mount_point: PathBuf,
    /// `cgroup2` rather than v1 `cgroup`.
    pub v2: bool,
    /// For v1, the controllers of this hierarchy (from the super options).
    pub controllers: Vec<String>,
}

/// The cgroup mounts of a `/proc/self/mountinfo` text.
pub fn parse_mountinfo(text: &str) -> Vec<CgroupMount> {
    let mut out = Vec::new();
    for line in text.lines() {
        // `id parent dev root mount-point options [optional...] - fstype source super`
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        if left.len() < 5 || right.is_empty() {
            continue;
        }
        let v2 = match right[0] {
            "cgroup2" => true,
            "cgroup" => false,
            _ => continue,
        };
        let controllers = match (v2, right.get(2)) {
            (false, Some(opts)) => opts.split(',').map(str::to_string).collect(),
            _ => Vec::new(),
        };
        out.push(CgroupMount {
            root: unescape_mount(left[3]),
            mount_point: PathBuf::from(unescape_mount(left[4])),
            v2,
            controllers,
        });
    }
    out
}

/// mountinfo writes space, tab, newline and backslash as `\ooo` octal escapes.
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let v = oct.iter().fold(0u32, |v, d| v * 8 + u32::from(d - b'0'));
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What the cgroup files say about this process.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CgroupFigures {
    /// The smallest memory limit along the hierarchy (v1 and v2 together).
    pub memory_limit: Option<u64>,
    /// The file that limit came from.
    pub memory_limit_file: Option<PathBuf>,
    /// Memory charged to the process's own cgroup.
    pub memory_usage: Option<u64>,
    /// The least room left under a limit along the hierarchy: limit less usage less
    /// inactive page cache (`inactive_file` in v2's memory.stat, `total_inactive_file`
    /// in v1's).
    pub memory_room: Option<u64>,
    /// The smallest CPU quota along the hierarchy, in CPUs.
    pub cpu_quota: Option<f64>,
}

/// Read the cgroup limits of the process described by `proc_cgroup` and `mountinfo`
/// (the texts of `/proc/self/cgroup` and `/proc/self/mountinfo`), with the mount points
/// taken under `sysroot` (`/` for real; a temporary directory in tests).
///
/// Limits set on a parent cgroup bind every child, so each directory from the process's
/// cgroup up to the mount point is read and the smallest limit wins. Missing files are
/// no limit. In the hybrid layout (v1 controllers plus an empty v2 hierarchy) both are
/// read and the smaller limit wins.
pub fn read_cgroups(sysroot: &Path, proc_cgroup: &str, mountinfo: &str) -> CgroupFigures {
    let procs = parse_proc_cgroup(proc_cgroup);
    let mounts = parse_mountinfo(mountinfo);
    let mut out = CgroupFigures::default();
    let read = |p: &Path| std::fs::read_to_string(p).ok();

    // `usage` and `stat` name the usage file and the memory.stat key of inactive page
    // cache beside the limit file.
    let take_limit = |out: &mut CgroupFigures, file: PathBuf, usage: &str, stat: &str| {
        if let Some(v) = read(&file).as_deref().and_then(parse_memory_limit) {
            let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
            if let Some(used) = read(&dir.join(usage))
                .as_deref()
                .and_then(parse_memory_usage)
            {
                let cache = read(&dir.join("memory.stat"))
                    .as_deref()
                    .and_then(|t| parse_stat_field(t, stat))
                    .unwrap_or(0);
                let room = v.saturating_sub(used.saturating_sub(cache));
                if out.memory_room.is_none_or(|r| room < r) {
                    out.memory_room = Some(room);
                }
            }
            if out.memory_limit.is_none_or(|l| v < l) {
                out.memory_limit = Some(v);
                out.memory_limit_file = Some(file);
            }
        }
    };
    let take_quota = |out: &mut CgroupFigures, q: Option<f64>| {
        if let Some(q) = q {
            if out.cpu_quota.is_none_or(|c| q < c) {
                out.cpu_quota = Some(q);
            }
        }
    };

    if let Some(path) = &procs.v2 {
        if let Some(m) = mounts.iter().find(|m| m.v2) {
            let dirs = hierarchy(sysroot, m, path);
            for d in &dirs {
                take_limit(
                    &mut out,
                    d.join("memory.max"),
                    "memory.current",
                    "inactive_file",
                );
                take_quota(
                    &mut out,
                    read(&d.join("cpu.max")).as_deref().and_then(parse_cpu_max),
                );
            }
            if let Some(leaf) = dirs.first() {
                out.memory_usage = read(&leaf.join("memory.current"))
                    .as_deref()
                    .and_then(parse_memory_usage);
            }
        }
    }
    if let Some(path) = procs.v1_path("memory") {
        if let Some(m) = v1_mount(&mounts, "memory") {
            let dirs = hierarchy(sysroot, m, path);
            for d in &dirs {
                take_limit(
                    &mut out,
                    d.join("memory.limit_in_bytes"),
                    "memory.usage_in_bytes",
                    "total_inactive_file",
                );
            }
            if out.memory_usage.is_none() {
                if let Some(leaf) = dirs.first() {
                    out.memory_usage = read(&leaf.join("memory.usage_in_bytes"))
                        .as_deref()
                        .and_then(parse_memory_usage);
                }
            }
        }
    }
    if let Some(path) = procs.v1_path("cpu") {
        if let Some(m) = v1_mount(&mounts, "cpu") {
            for d in hierarchy(sysroot, m, path) {
                let q = read(&d.join("cpu.cfs_quota_us"));
                let p = read(&d.join("cpu.cfs_period_us"));
                if let (Some(q), Some(p)) = (q, p) {
                    take_quota(&mut out, parse_cfs_quota(&q, &p));
                }
            }
        }
    }
    out
}

fn v1_mount<'a>(mounts: &'a [CgroupMount], controller: &str) -> Option<&'a CgroupMount> {
    mounts
        .iter()
        .find(|m| !m.v2 && m.controllers.iter().any(|c| c == controller))
}

/// The directories of cgroup `path` and its ancestors that `mount` shows, leaf first.
/// Empty when the path lies outside the mounted sub-tree (a container that cannot see
/// its own cgroup): then nothing is known, which is better than reading someone else's.
fn hierarchy(sysroot: &Path, mount: &CgroupMount, path: &str) -> Vec<PathBuf> {
    let root = mount.root.trim_end_matches('/');
    let Some(rel) = path.strip_prefix(root) else {
        return Vec::new();
    };
    if !(rel.is_empty() || rel.starts_with('/')) || rel.split('/').any(|c| c == "..") {
        return Vec::new();
    }
    let base = sysroot.join(
        mount
            .mount_point
            .strip_prefix("/")
            .unwrap_or(&mount.mount_point),
    );
    let mut dirs = Vec::new();
    let mut dir = base.join(rel.trim_start_matches('/'));
    loop {
        dirs.push(dir.clone());
        if dir == base || !dir.pop() || !dir.starts_with(&base) {
            break;
        }
    }
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = "MemTotal:       24684084 kB\n\
MemFree:        23300000 kB\n\
MemAvailable:   24313928 kB\n\
Buffers:            1000 kB\n\
Cached:          1200000 kB\n\
SwapCached:            0 kB\n\
SwapTotal:       2097148 kB\n\
SwapFree:         700000 kB\n";

    #[test]
    fn meminfo() {
        let m = parse_meminfo(MEMINFO).unwrap();
        assert_eq!(m.total, 24684084 * 1024);
        assert_eq!(m.available, 24313928 * 1024);
        assert_eq!(m.swap_total, 2097148 * 1024);
        assert_eq!(m.swap_free, 700000 * 1024);
        // Old kernels: no MemAvailable.
        let old = MEMINFO.replace("MemAvailable:   24313928 kB\n", "");
        let m = parse_meminfo(&old).unwrap();
        assert_eq!(m.available, (23300000 + 1000 + 1200000) * 1024);
        // `SwapCached` must not be mistaken for `Cached`, nor `MemTotalX` for `MemTotal`.
        assert!(parse_meminfo("MemTotalX: 5 kB\n").is_none());
        assert!(parse_meminfo("").is_none());
        assert!(parse_meminfo("MemTotal: lots kB\n").is_none());
        assert!(parse_meminfo("MemTotal: 99999999999999999999 kB\n").is_none());
    }

    #[test]
    fn limits() {
        assert_eq!(parse_memory_limit("max\n"), None);
        assert_eq!(parse_memory_limit("536870912\n"), Some(512 << 20));
        assert_eq!(parse_memory_limit("9223372036854771712\n"), None);
        assert_eq!(parse_memory_limit("9223372036854710272\n"), None); // 64 KiB pages
        assert_eq!(parse_memory_limit(""), None);
        assert_eq!(parse_memory_limit("-1"), None);
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max("150000 100000\n"), Some(1.5));
        assert_eq!(parse_cpu_max("200000\n"), Some(2.0));
        assert_eq!(parse_cpu_max("100 0"), None);
        assert_eq!(parse_cpu_max(""), None);
        assert_eq!(parse_cfs_quota("-1\n", "100000\n"), None);
        assert_eq!(parse_cfs_quota("50000\n", "100000\n"), Some(0.5));
    }

    #[test]
    fn cpus_combine() {
        assert_eq!(combine_cpus(8, None), 8);
        assert_eq!(combine_cpus(8, Some(1.5)), 2);
        assert_eq!(combine_cpus(8, Some(0.2)), 1);
        assert_eq!(combine_cpus(2, Some(4.0)), 2);
        assert_eq!(combine_cpus(0, None), 1);
        assert_eq!(combine_cpus(4, Some(f64::NAN)), 4);
    }

    #[test]
    fn proc_cgroup() {
        let v1 = "12:memory:/slurm/uid_1/job_7\n4:cpu,cpuacct:/slurm/uid_1/job_7\n0::/\n";
        let p = parse_proc_cgroup(v1);
        assert_eq!(p.v2.as_deref(), Some("/"));
        assert_eq!(p.v1_path("memory"), Some("/slurm/uid_1/job_7"));
        assert_eq!(p.v1_path("cpuacct"), Some("/slurm/uid_1/job_7"));
        assert_eq!(p.v1_path("pids"), None);
        let v2 = parse_proc_cgroup("0::/user.slice/user-1000.slice/session-2.scope\n");
        assert_eq!(
            v2.v2.as_deref(),
            Some("/user.slice/user-1000.slice/session-2.scope")
        );
        assert!(v2.v1.is_empty());
        assert_eq!(parse_proc_cgroup("garbage\n\n"), ProcCgroup::default());
    }

    #[test]
    fn mountinfo() {
        let text = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory\n\
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
41 31 0:38 /docker/abc /sys/fs/cgroup/my\\040dir rw,relatime - cgroup2 cgroup2 rw\n\
nonsense line\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].mount_point, Path::new("/sys/fs/cgroup/memory"));
        assert!(!m[0].v2 && m[0].controllers.contains(&"memory".to_string()));
        assert!(m[1].controllers.contains(&"cpu".to_string()));
        assert!(m[2].v2);
        assert_eq!(m[2].root, "/docker/abc");
        assert_eq!(m[2].mount_point, Path::new("/sys/fs/cgroup/my dir"));
        assert_eq!(unescape_mount("a\\134b\\"), "a\\b\\");
        assert_eq!(unescape_mount("\\04"), "\\04");
    }

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn v2_tree_takes_the_smallest_limit_up_the_hierarchy() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        write(r, "sys/fs/cgroup/job/memory.max", "1073741824\n");
        write(r, "sys/fs/cgroup/job/cpu.max", "150000 100000\n");
        write(r, "sys/fs/cgroup/job/step/memory.max", "max\n");
        write(r, "sys/fs/cgroup/job/step/memory.current", "52428800\n");
        write(r, "sys/fs/cgroup/job/step/cpu.max", "max 100000\n");
        let mi = "30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let f = read_cgroups(r, "0::/job/step\n", mi);
        assert_eq!(f.memory_limit, Some(1 << 30));
        assert_eq!(
            f.memory_limit_file.as_deref(),
            Some(r.join("sys/fs/cgroup/job/memory.max").as_path())
        );
        assert_eq!(f.memory_usage, Some(50 << 20));
        assert_eq!(f.cpu_quota, Some(1.5));

        // A tighter limit below wins.
        write(r, "sys/fs/cgroup/job/step/memory.max", "268435456\n");
        let f = read_cgroups(r, "0::/job/step\n", mi);
        assert_eq!(f.memory_limit, Some(256 << 20));

        // Unlimited everywhere, and missing files: no limit, no panic.
        let f = read_cgroups(r, "0::/elsewhere\n", mi);
        assert_eq!(f, CgroupFigures::default());
        // A path outside the mounted sub-tree reads nothing.
        let mi_sub = "30 1 0:26 /job /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            read_cgroups(r, "0::/other\n", mi_sub),
            CgroupFigures::default()
        );
        assert_eq!(read_cgroups(r, "0::/../x\n", mi), CgroupFigures::default());
        // No files at all.
        assert_eq!(read_cgroups(r, "", ""), CgroupFigures::default());
    }

    #[test]
    fn the_room_left_under_a_busy_cgroup_is_what_the_default_takes() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        // A 1 GiB job whose other processes hold 900 MiB, 100 MiB of it reclaimable
        // page cache: 224 MiB are left, not 1 GiB.
        write(r, "sys/fs/cgroup/job/memory.max", "1073741824\n");
        write(r, "sys/fs/cgroup/job/memory.current", "943718400\n");
        write(
            r,
            "sys/fs/cgroup/job/memory.stat",
            "anon 734003200\nfile 209715200\ninactive_file 104857600\nactive_file 1\n",
        );
        write(r, "sys/fs/cgroup/job/step/memory.max", "max\n");
        let mi = "30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let f = read_cgroups(r, "0::/job/step\n", mi);
        assert_eq!(f.memory_limit, Some(1 << 30));
        assert_eq!(f.memory_room, Some(224 << 20));
        let mut s = SystemInfo::fixed(8 << 30, f.memory_limit);
        s.cgroup_room_bytes = f.memory_room;
        assert_eq!(s.memory_limit(), 224 << 20);
        let b = crate::Budget::default_for(&s);
        assert!(b.bytes <= 224 << 20, "{b:?}");
        // Over the limit (usage above it): no room, not an overflow.
        write(r, "sys/fs/cgroup/job/memory.current", "2147483648\n");
        assert_eq!(read_cgroups(r, "0::/job/step\n", mi).memory_room, Some(0));
        // v1: usage_in_bytes and total_inactive_file.
        write(r, "v1/memory/memory.limit_in_bytes", "536870912\n");
        write(r, "v1/memory/memory.usage_in_bytes", "268435456\n");
        write(
            r,
            "v1/memory/memory.stat",
            "cache 1\ntotal_inactive_file 134217728\n",
        );
        let mi = "35 31 0:32 / /v1/memory rw - cgroup cgroup rw,memory\n";
        let f = read_cgroups(r, "4:memory:/\n", mi);
        assert_eq!(f.memory_room, Some(384 << 20));
    }

    #[test]
    fn v1_tree_and_hybrid() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        // A container that mounts its own sub-tree at the mount point.
        write(
            r,
            "sys/fs/cgroup/memory/memory.limit_in_bytes",
            "9223372036854771712\n",
        );
        write(
            r,
            "sys/fs/cgroup/memory/job/memory.limit_in_bytes",
            "2147483648\n",
        );
        write(
            r,
            "sys/fs/cgroup/memory/job/memory.usage_in_bytes",
            "1000\n",
        );
        write(r, "sys/fs/cgroup/cpu,cpuacct/job/cpu.cfs_quota_us", "-1\n");
        write(
            r,
            "sys/fs/cgroup/cpu,cpuacct/job/cpu.cfs_period_us",
            "100000\n",
        );
        write(r, "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "300000\n");
        write(r, "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
        let mi = "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
        let pc = "4:memory:/job\n2:cpu,cpuacct:/job\n0::/job\n";
        let f = read_cgroups(r, pc, mi);
        assert_eq!(f.memory_limit, Some(2 << 30));
        assert_eq!(f.memory_usage, Some(1000));
        assert_eq!(f.cpu_quota, Some(3.0));

        // Hybrid with a v2 limit as well: the smaller one wins.
        write(r, "sys/fs/cgroup/unified/job/memory.max", "1073741824\n");
        let f = read_cgroups(r, pc, mi);
        assert_eq!(f.memory_limit, Some(1 << 30));

        // The sentinel alone means no limit.
        let f = read_cgroups(r, "4:memory:/\n", mi);
        assert_eq!(f.memory_limit, None);
    }

    #[test]
    fn memory_limit_and_warnings() {
        let mut s = SystemInfo::fixed(8 << 30, Some(2 << 30));
        assert_eq!(s.memory_limit(), 2 << 30);
        s.cgroup_limit_bytes = None;
        assert_eq!(s.memory_limit(), 8 << 30);
        assert!(s.derived_warnings().is_empty());
        s.swap_total_bytes = 100;
        s.swap_used_bytes = 63;
        assert!(s.heavy_swap());
        assert_eq!(
            s.derived_warnings(),
            vec!["swap 63% in use: planning one worker".to_string()]
        );
        s.swap_used_bytes = 50;
        assert!(!s.heavy_swap());
        s.cgroup_limit_bytes = Some(1000);
        s.cgroup_usage_bytes = Some(950);
        let w = s.derived_warnings();
        assert!(w[0].starts_with("cgroup memory 95% in use"), "{w:?}");
    }

    #[test]
    fn probe_reads_this_machine() {
        let s = SystemInfo::probe();
        assert!(s.cpus >= 1 && s.cpus <= s.affinity_cpus);
        if cfg!(target_os = "linux") {
            assert!(s.total_bytes > 0);
            assert!(s.available_bytes > 0 && s.available_bytes <= s.total_bytes);
            assert!(s.memory_limit() > 0);
        }
        // Serialises with the field names records use, and reads back.
        let v = serde_json::to_value(&s).unwrap();
        assert!(v.get("available_bytes").is_some() && v.get("affinity_cpus").is_some());
        let back: SystemInfo = serde_json::from_value(v).unwrap();
        assert_eq!(back.total_bytes, s.total_bytes);
    }
}
