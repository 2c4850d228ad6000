//! `edit` (in progress).

use crate::{EditOpts, NAME};
use anyhow::Result;
use membudget::cli::{LogArgs, Status};
use membudget::{driver, Error};

/// `--help` text.
pub const LONG_ABOUT: &str = "";

/// Run it.
pub fn run(o: &EditOpts, log: &LogArgs) -> Result<Status> {
    driver::for_each_record(NAME, &o.input, log, |_r, _j| {
        Err(Error::unsupported("not yet"))
    })
}

/// `FROM:TO` of `--move`.
pub fn parse_move(s: &str) -> Result<(usize, usize), String> {
    let (a, b) = s.split_once(':').ok_or("FROM:TO, e.g. 10:1")?;
    let p = |x: &str| {
        x.trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or(format!("{x:?} is not a page number (1, 2...)"))
    };
    Ok((p(a)?, p(b)?))
}
