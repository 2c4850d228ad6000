//! Memory budgets: parsing `512MiB`, `2G`, `1.5GiB`, `123456` or `60%`, and the default
//! taken from the machine's real limit.

use crate::error::{Error, ErrorKind};
use crate::system::SystemInfo;
use serde::{Deserialize, Serialize};

/// Share of the real limit the default budget takes: the rest is left for the page
/// cache, the allocator's slack and whatever else runs beside the tool.
pub const DEFAULT_SAFETY_FACTOR: f64 = 0.7;

/// A budget as the user wrote it, before it is resolved against the machine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BudgetSpec {
    /// An absolute number of bytes.
    Bytes(u64),
    /// A share (0 < p <= 100) of the memory the machine can give (see
    /// [`SystemInfo::memory_limit`]).
    Percent(f64),
}

impl std::str::FromStr for BudgetSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let t = s.trim();
        let bad = |why: &str| {
            Error::new(
                ErrorKind::Usage,
                format!("invalid memory budget {s:?}: {why} (examples: 512MiB, 2G, 1.5GiB, 60%)"),
            )
        };
        if t.is_empty() {
            return Err(bad("empty"));
        }
        if let Some(p) = t.strip_suffix('%') {
            let p: f64 = p.trim().parse().map_err(|_| bad("not a percentage"))?;
            if !(p > 0.0 && p <= 100.0) {
                return Err(bad("a percentage must be above 0 and at most 100"));
            }
            return Ok(BudgetSpec::Percent(p));
        }
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (digits, unit) = t.split_at(split);
        let num: f64 = digits.parse().map_err(|_| bad("no number"))?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1_000,
            "kib" => 1 << 10,
            "m" | "mb" => 1_000_000,
            "mib" => 1 << 20,
            "g" | "gb" => 1_000_000_000,
            "gib" => 1 << 30,
            "t" | "tb" => 1_000_000_000_000,
            "tib" => 1 << 40,
            _ => return Err(bad("unknown unit")),
        };
        // `2G` follows the convention of sort -S, docker and Slurm: binary multiples.
        let mult = match unit.trim() {
            "K" | "k" => 1 << 10,
            "M" | "m" => 1 << 20,
            "G" | "g" => 1 << 30,
            "T" | "t" => 1 << 40,
            _ => mult,
        };
        let too_big = || bad("out of range (at most 18446744073709551615 bytes)");
        // Whole numbers are counted exactly: through f64, 18446744073709551616 would round
        // to u64::MAX and be clamped instead of refused.
        if !digits.contains('.') {
            let n: u128 = digits.parse().map_err(|_| too_big())?;
            let bytes = n.checked_mul(u128::from(mult)).ok_or_else(too_big)?;
            let bytes = u64::try_from(bytes).map_err(|_| too_big())?;
            if bytes == 0 {
                return Err(bad("out of range"));
            }
            return Ok(BudgetSpec::Bytes(bytes));
        }
        if unit.is_empty() {
            return Err(bad("a byte count must be whole"));
        }
        let bytes = num * mult as f64;
        // 2^64 is the first value that does not fit; `u64::MAX as f64` is 2^64 itself.
        if !(1.0..18_446_744_073_709_551_616.0).contains(&bytes) {
            return Err(bad("out of range"));
        }
        Ok(BudgetSpec::Bytes(bytes.round() as u64))
    }
}

/// Where a budget came from, for the record and for `-v` explanations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetSource {
    /// Given in bytes by the user.
    User,
    /// Given as a percentage of available memory.
    Percent,
    /// The default: the machine's real limit times the safety factor.
    Default,
}

impl std::fmt::Display for BudgetSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BudgetSource::User => f.write_str("from --memory-limit"),
            BudgetSource::Percent => {
                f.write_str("a share of what the machine can give, from --memory-limit")
            }
            BudgetSource::Default => write!(
                f,
                "the default: {:.0}% of the smallest of available memory, the cgroup \
                 limit and the room left under it",
                DEFAULT_SAFETY_FACTOR * 100.0
            ),
        }
    }
}

/// A resolved memory budget in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    /// The budget in bytes: peak RSS must stay at or below this.
    pub bytes: u64,
    /// Where it came from.
    pub source: BudgetSource,
}

impl Budget {
    /// A budget of exactly `bytes`.
    pub fn bytes(bytes: u64) -> Budget {
        Budget {
            bytes,
            source: BudgetSource::User,
        }
    }

    /// Resolve a spec against the machine.
    pub fn resolve(spec: BudgetSpec, sys: &SystemInfo) -> Budget {
        match spec {
            BudgetSpec::Bytes(b) => Budget {
                bytes: b,
                source: BudgetSource::User,
            },
            BudgetSpec::Percent(p) => Budget {
                bytes: (sys.memory_limit() as f64 * p / 100.0) as u64,
                source: BudgetSource::Percent,
            },
        }
    }

    /// The default budget: the smallest of available memory, the cgroup limit and the
    /// room left under it (see [`SystemInfo::memory_limit`]), times
    /// [`DEFAULT_SAFETY_FACTOR`].
    pub fn default_for(sys: &SystemInfo) -> Budget {
        Budget {
            bytes: (sys.memory_limit() as f64 * DEFAULT_SAFETY_FACTOR) as u64,
            source: BudgetSource::Default,
        }
    }

    /// Parse `s` (or take the default when `None`) and resolve it.
    pub fn from_arg(s: Option<&str>, sys: &SystemInfo) -> Result<Budget, Error> {
        match s {
            Some(s) => Ok(Budget::resolve(s.parse()?, sys)),
            None => Ok(Budget::default_for(sys)),
        }
    }
}

impl std::fmt::Display for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", human_bytes(self.bytes))
    }
}

pub use crate::units::human_bytes;

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> u64 {
        match s.parse::<BudgetSpec>().unwrap() {
            BudgetSpec::Bytes(b) => b,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn units() {
        assert_eq!(b("512MiB"), 512 << 20);
        assert_eq!(b("2G"), 2 << 30);
        assert_eq!(b("2GB"), 2_000_000_000);
        assert_eq!(b("1.5GiB"), 3 << 29);
        assert_eq!(b("123456"), 123_456);
        assert_eq!(b(" 64 MiB "), 64 << 20);
        assert_eq!(b("10k"), 10 << 10);
    }

    #[test]
    fn percent() {
        assert_eq!(
            "60%".parse::<BudgetSpec>().unwrap(),
            BudgetSpec::Percent(60.0)
        );
        let sys = SystemInfo::fixed(8 << 30, None);
        let bud = Budget::resolve(BudgetSpec::Percent(50.0), &sys);
        assert_eq!(bud.bytes, 4 << 30);
    }

    #[test]
    fn sizes_beyond_u64_are_refused_all_alike() {
        assert_eq!(b("18446744073709551615"), u64::MAX);
        assert_eq!(b("16777215TiB"), 16_777_215 << 40);
        for s in [
            "18446744073709551616",
            "18446744073709551617",
            "99999999999999999999999999999999999999999999",
            "16777216TiB",
            "16777216.0TiB",
            "18446744073709551616B",
        ] {
            let e = s.parse::<BudgetSpec>().unwrap_err();
            assert!(e.message.contains("out of range"), "{s}: {}", e.message);
        }
    }

    #[test]
    fn nonsense_is_an_error() {
        for s in [
            "", "abc", "12XB", "-5M", "0", "0%", "150%", "1.5", "MiB", "1e400G", "%",
        ] {
            let e = s.parse::<BudgetSpec>();
            assert!(e.is_err(), "{s:?} parsed as {e:?}");
            if let Err(e) = e {
                assert!(e.message.contains("invalid memory budget"), "{}", e.message);
            }
        }
    }

    #[test]
    fn sources_say_where_the_budget_came_from() {
        let sys = SystemInfo::fixed(10 << 30, None);
        let shown = |arg| Budget::from_arg(arg, &sys).unwrap().source.to_string();
        assert!(shown(Some("1G")).contains("--memory-limit"));
        assert!(shown(Some("50%")).contains("share"));
        assert!(shown(None).contains(&format!("{}%", (DEFAULT_SAFETY_FACTOR * 100.0) as u32)));
    }

    #[test]
    fn default_is_under_the_real_limit() {
        let sys = SystemInfo::fixed(16 << 30, Some(4 << 30));
        let d = Budget::default_for(&sys);
        assert!(d.bytes < 4 << 30 && d.bytes > 2 << 30);
    }
}
