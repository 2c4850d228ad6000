//! Raster I/O for images larger than memory: sources read by bands of rows ([`RowSource`]),
//! a halo-aware sliding window over them ([`Window`]), so neighbourhood operations see the
//! rows around each band without ever holding the whole image.

pub mod ahead;
pub mod fits;
pub mod jpeg;
pub mod jpeg_dc;
pub mod metrics;
pub mod png;
pub mod thumbnail;
pub mod tiff;
pub mod window;
pub mod write;

pub use window::{Edge, Window};

use membudget::Error;

/// A band of rows in planar layout: `planes[c]` holds `rows` rows of `width` samples of
/// `sample_bytes` bytes each (native byte order for multi-byte samples).
#[derive(Debug, Default, Clone)]
pub struct Band {
    /// First row of the band in the image.
    pub y0: u32,
    /// Number of rows.
    pub rows: u32,
    /// Width in samples.
    pub width: u32,
    /// Bytes per sample.
    pub sample_bytes: usize,
    /// One buffer per component.
    pub planes: Vec<Vec<u8>>,
}

impl Band {
    /// Bytes in one row of one plane.
    pub fn row_len(&self) -> usize {
        self.width as usize * self.sample_bytes
    }

    /// Shape the band for `rows` rows from `y0` of a `width` x `comps` image, reusing its
    /// buffers (contents are left unspecified).
    pub fn shape(&mut self, y0: u32, rows: u32, width: u32, comps: usize, sample_bytes: usize) {
        self.y0 = y0;
        self.rows = rows;
        self.width = width;
        self.sample_bytes = sample_bytes;
        let len = width as usize * rows as usize * sample_bytes;
        self.planes.resize_with(comps, Vec::new);
        for p in &mut self.planes {
            p.resize(len, 0);
        }
    }

    /// Row `y` (counted from the band's first row) of plane `c`.
    pub fn row(&self, c: usize, y: u32) -> &[u8] {
        let w = self.row_len();
        &self.planes[c][y as usize * w..(y as usize + 1) * w]
    }

    /// Copy the rectangle `x0..x1` of every row into `out` as planar tile data
    /// (component after component).
    pub fn tile(&self, x0: u32, x1: u32, out: &mut Vec<u8>) {
        let sb = self.sample_bytes;
        let w = self.row_len();
        let (a, b) = (x0 as usize * sb, x1 as usize * sb);
        out.clear();
        out.reserve((b - a) * self.rows as usize * self.planes.len());
        for plane in &self.planes {
            for r in 0..self.rows as usize {
                out.extend_from_slice(&plane[r * w + a..r * w + b]);
            }
        }
    }
}

/// The geometry of an image as a source gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Components (samples per pixel) in a band.
    pub comps: usize,
    /// Bytes per sample in a band.
    pub sample_bytes: usize,
}

/// An image read by bands of rows, top to bottom, never whole.
pub trait RowSource {
    /// The image's geometry.
    fn geometry(&self) -> Geometry;

    /// Fill `band` with rows `y0 .. y0 + rows` (reusing its buffers). Sources decode each
    /// strip or tile once when bands are asked for in order without overlap, which is how
    /// [`Window`] asks for them.
    fn read_band(&mut self, y0: u32, rows: u32, band: &mut Band) -> Result<(), Error>;
}

/// A borrowed source reads as the source (a chain built over a source it does not own).
impl<T: RowSource + ?Sized> RowSource for &mut T {
    fn geometry(&self) -> Geometry {
        (**self).geometry()
    }
    fn read_band(&mut self, y0: u32, rows: u32, band: &mut Band) -> Result<(), Error> {
        (**self).read_band(y0, rows, band)
    }
}

/// A boxed source reads as the source.
impl<T: RowSource + ?Sized> RowSource for Box<T> {
    fn geometry(&self) -> Geometry {
        (**self).geometry()
    }
    fn read_band(&mut self, y0: u32, rows: u32, band: &mut Band) -> Result<(), Error> {
        (**self).read_band(y0, rows, band)
    }
}
