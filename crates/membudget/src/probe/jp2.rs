//! JPEG 2000 probe. (Being written.)

use super::Probe;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// JPEG 2000 header details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Jp2Info {}

/// Probe a JPEG 2000 file.
pub fn probe(_path: &Path) -> Result<Probe> {
    Err(Error::unsupported("JPEG 2000 probe not available yet"))
}
