//! JPEG and PNG probes. (Being written.)

use super::Probe;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// A JPEG's header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JpegInfo {}

/// A PNG's header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PngInfo {}

/// Probe a JPEG file.
pub fn probe_jpeg(_path: &Path) -> Result<Probe> {
    Err(Error::unsupported("JPEG probe not available yet"))
}

/// Probe a PNG file.
pub fn probe_png(_path: &Path) -> Result<Probe> {
    Err(Error::unsupported("PNG probe not available yet"))
}
