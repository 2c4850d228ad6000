//! `cover` (in progress).

use crate::{CoverOpts, NAME};
use anyhow::Result;
use membudget::cli::{LogArgs, Status};
use membudget::{driver, Error};

/// `--help` text.
pub const LONG_ABOUT: &str = "";

/// Run it.
pub fn run(o: &CoverOpts, log: &LogArgs) -> Result<Status> {
    driver::for_each_record(NAME, &o.input, log, |_r, _j| {
        Err(Error::unsupported("not yet"))
    })
}
