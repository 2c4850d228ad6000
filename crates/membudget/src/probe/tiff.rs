//! TIFF and BigTIFF probe: every page's header, no pixel data. (Being written.)

use super::Probe;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Every page of a TIFF.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TiffInfo {}

/// Probe a TIFF file.
pub fn probe(_path: &Path) -> Result<Probe> {
    Err(Error::unsupported("TIFF probe not available yet"))
}
