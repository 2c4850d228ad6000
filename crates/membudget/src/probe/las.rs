//! LAS probe. (Being written.)

use super::Probe;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// LAS header details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LasInfo {}

/// Probe a LAS file.
pub fn probe(_path: &Path) -> Result<Probe> {
    Err(Error::unsupported("LAS probe not available yet"))
}
