//! The machine as a budget sees it: RAM, swap, cgroup limits, usable CPUs. (Being completed.)

use serde::{Deserialize, Serialize};

/// What the machine can give a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemInfo {
    /// Physical RAM in bytes.
    pub total_bytes: u64,
    /// Available RAM (MemAvailable) in bytes.
    pub available_bytes: u64,
    /// Swap size in bytes.
    pub swap_total_bytes: u64,
    /// Swap in use in bytes.
    pub swap_used_bytes: u64,
    /// The cgroup memory limit (v2 memory.max or v1 memory.limit_in_bytes), if one is set.
    pub cgroup_limit_bytes: Option<u64>,
    /// CPUs this process may use (affinity mask and cgroup cpu.max quota).
    pub cpus: usize,
}

impl SystemInfo {
    /// Read the machine's state now.
    pub fn probe() -> SystemInfo {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        SystemInfo {
            total_bytes: 0,
            available_bytes: 0,
            swap_total_bytes: 0,
            swap_used_bytes: 0,
            cgroup_limit_bytes: None,
            cpus,
        }
    }

    /// A made-up machine, for tests and planning "what if".
    pub fn fixed(available_bytes: u64, cgroup_limit_bytes: Option<u64>) -> SystemInfo {
        SystemInfo {
            total_bytes: available_bytes,
            available_bytes,
            swap_total_bytes: 0,
            swap_used_bytes: 0,
            cgroup_limit_bytes,
            cpus: 2,
        }
    }

    /// The memory a job can really have: the smaller of available RAM and the cgroup limit.
    pub fn memory_limit(&self) -> u64 {
        match self.cgroup_limit_bytes {
            Some(c) => c.min(self.available_bytes),
            None => self.available_bytes,
        }
    }

    /// Swap more than half in use: plan one worker and warn.
    pub fn heavy_swap(&self) -> bool {
        self.swap_total_bytes > 0 && self.swap_used_bytes * 2 > self.swap_total_bytes
    }
}
