//! FITS probe. (Being written.)

use super::Probe;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// FITS header details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitsInfo {}

/// Probe a FITS file.
pub fn probe(_path: &Path) -> Result<Probe> {
    Err(Error::unsupported("FITS probe not available yet"))
}
