//! Measuring memory while running: current and peak RSS of this process, a child's peak
//! RSS, a background sampler, and the guard tools call between chunks. (Being completed.)

/// Peak resident set size of this process in bytes (VmHWM).
pub fn peak_rss() -> Option<u64> {
    status_field("VmHWM:")
}

/// Current resident set size of this process in bytes (VmRSS).
pub fn current_rss() -> Option<u64> {
    status_field("VmRSS:")
}

fn status_field(name: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(name))?;
    let kb: u64 = line[name.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}
