//! JPEG and PNG probes: the header only, read with the decoders' own `read_info`
//! (`jpeg-decoder` stops after the frame header, `png` before the first IDAT chunk), plus
//! the dimension sanity check every raster probe shares.
//!
//! Both formats are reported as strips: a sequential JPEG or non-interlaced PNG decoder
//! hands out scanlines in order, so one row (plus the decoder's own small state, such as a
//! JPEG MCU row, which the cost model counts as overhead) is the smallest unit a reader
//! must hold. A progressive JPEG or an interlaced PNG gives no final row before the last
//! pass, so for those the block is the whole image.

use super::{Detail, Format, ImageSummary, Layout, Probe, SampleFormat};
use crate::error::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

/// Decoded bytes of one image above which its header is treated as hostile (2^48, 256 TiB):
/// no real scan comes near it, and it keeps every later size computation far from overflow.
pub const MAX_IMAGE_BYTES: u64 = 1 << 48;

/// Rejects zero or absurd dimensions: zero is `corrupt`, a decoded size beyond
/// [`MAX_IMAGE_BYTES`] is `hostile`. Shared by the raster probes.
pub fn check_dimensions(width: u64, height: u64, bands: u32, bits: u32) -> Result<()> {
    if width == 0 || height == 0 || bands == 0 || bits == 0 {
        return Err(Error::corrupt(format!(
            "zero dimension: {width}x{height}, {bands} bands of {bits} bits"
        )));
    }
    let bytes = u128::from(width)
        .saturating_mul(u128::from(height))
        .saturating_mul(u128::from(bands))
        .saturating_mul(u128::from(bits.div_ceil(8)));
    if bytes > u128::from(MAX_IMAGE_BYTES) {
        return Err(Error::hostile(format!(
            "absurd dimensions: {width}x{height}, {bands} bands of {bits} bits ({bytes} bytes decoded)"
        )));
    }
    Ok(())
}

/// A JPEG's header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JpegInfo {
    /// Width in pixels.
    pub width: u64,
    /// Height in pixels.
    pub height: u64,
    /// Colour components (1 gray, 3 YCbCr/RGB, 4 CMYK/YCCK).
    pub components: u32,
    /// Bits per sample as the decoder delivers them (8, or 16 for lossless above 8 bits).
    pub bits: u32,
    /// Coding process: `baseline` / `sequential` (DCT), `progressive` or `lossless`.
    pub coding: String,
    /// Progressive DCT (every scan must be read before any row is final).
    pub progressive: bool,
    /// Length of the embedded ICC profile in bytes, if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub icc_bytes: Option<u64>,
    /// Whether an EXIF block is present.
    pub exif: bool,
}

/// A PNG's header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PngInfo {
    /// Width in pixels.
    pub width: u64,
    /// Height in pixels.
    pub height: u64,
    /// Colour type: gray, gray_alpha, rgb, rgba, palette.
    pub color_type: String,
    /// Bit depth per sample (1, 2, 4, 8, 16; for palette images, of the index).
    pub bit_depth: u32,
    /// Samples per pixel as stored (a palette image stores one index).
    pub bands: u32,
    /// Adam7 interlacing.
    pub interlaced: bool,
    /// A tRNS chunk (transparency for gray, rgb or palette images).
    pub transparency: bool,
    /// Length of the (decompressed) ICC profile in bytes, if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub icc_bytes: Option<u64>,
    /// pHYs: `[x, y]` pixels per metre, when the unit is the metre.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pixels_per_metre: Option<[u32; 2]>,
    /// An APNG (acTL chunk): the number of frames it declares.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub animation_frames: Option<u32>,
}

/// Probe a JPEG file.
pub fn probe_jpeg(path: &Path) -> Result<Probe> {
    probe_jpeg_reader(BufReader::with_capacity(8192, File::open(path)?))
}

/// Probe a JPEG from a reader (an archive entry): only the header is read.
pub fn probe_jpeg_reader<R: std::io::Read>(reader: R) -> Result<Probe> {
    let mut dec = jpeg_decoder::Decoder::new(reader);
    // No decoding happens here; the bound only matters if someone extends this to decode.
    dec.set_max_decoding_buffer_size(64 << 20);
    dec.read_info().map_err(jpeg_error)?;
    let info = dec
        .info()
        .ok_or_else(|| Error::corrupt("JPEG: no frame header"))?;
    use jpeg_decoder::{CodingProcess, PixelFormat};
    let (components, bits) = match info.pixel_format {
        PixelFormat::L8 => (1, 8),
        PixelFormat::L16 => (1, 16),
        PixelFormat::RGB24 => (3, 8),
        PixelFormat::CMYK32 => (4, 8),
    };
    let (width, height) = (u64::from(info.width), u64::from(info.height));
    check_dimensions(width, height, components, bits).map_err(|e| prefixed("JPEG", e))?;
    let progressive = info.coding_process == CodingProcess::DctProgressive;
    let coding = match info.coding_process {
        CodingProcess::DctSequential => "sequential",
        CodingProcess::DctProgressive => "progressive",
        CodingProcess::Lossless => "lossless",
    };
    let image = ImageSummary {
        width,
        height,
        bands: components,
        bits,
        sample_format: SampleFormat::Uint,
        pages: 1,
        layout: Layout::Strips,
        block: [width, if progressive { height } else { 1 }],
        compressed: true,
    };
    let detail = JpegInfo {
        width,
        height,
        components,
        bits,
        coding: coding.into(),
        progressive,
        icc_bytes: dec.icc_profile().map(|p| p.len() as u64),
        exif: dec.exif_data().is_some(),
    };
    Ok(Probe {
        format: Format::Jpeg,
        bytes: 0,
        image: Some(image),
        points: None,
        archive: None,
        document: None,
        detail: Detail::Jpeg(detail),
    })
}

/// Probe a PNG file.
pub fn probe_png(path: &Path) -> Result<Probe> {
    probe_png_reader(BufReader::with_capacity(8192, File::open(path)?))
}

/// Probe a PNG from a reader (an archive entry): only the chunks before the first IDAT
/// are read.
pub fn probe_png_reader<R: std::io::BufRead + std::io::Seek>(reader: R) -> Result<Probe> {
    // The limit covers what read_info may allocate: a (decompressed) ICC profile and the
    // decoder's small row buffers. Text chunks are skipped so zTXt is never inflated.
    let mut dec = png::Decoder::new_with_limits(reader, png::Limits { bytes: 16 << 20 });
    dec.set_ignore_text_chunk(true);
    let reader = dec.read_info().map_err(png_error)?;
    let info = reader.info();
    use png::ColorType;
    let (color_type, bands) = match info.color_type {
        ColorType::Grayscale => ("gray", 1),
        ColorType::GrayscaleAlpha => ("gray_alpha", 2),
        ColorType::Rgb => ("rgb", 3),
        ColorType::Rgba => ("rgba", 4),
        ColorType::Indexed => ("palette", 1),
    };
    let bit_depth = info.bit_depth as u32;
    let (width, height) = (u64::from(info.width), u64::from(info.height));
    check_dimensions(width, height, bands, bit_depth).map_err(|e| prefixed("PNG", e))?;
    let detail = PngInfo {
        width,
        height,
        color_type: color_type.into(),
        bit_depth,
        bands,
        interlaced: info.interlaced,
        transparency: info.trns.is_some(),
        icc_bytes: info.icc_profile.as_ref().map(|p| p.len() as u64),
        pixels_per_metre: info
            .pixel_dims
            .filter(|d| d.unit == png::Unit::Meter)
            .map(|d| [d.xppu, d.yppu]),
        animation_frames: info.animation_control.map(|a| a.num_frames),
    };
    let image = ImageSummary {
        width,
        height,
        bands,
        bits: bit_depth,
        sample_format: SampleFormat::Uint,
        pages: 1,
        layout: Layout::Strips,
        block: [width, if info.interlaced { height } else { 1 }],
        compressed: true,
    };
    Ok(Probe {
        format: Format::Png,
        bytes: 0,
        image: Some(image),
        points: None,
        archive: None,
        document: None,
        detail: Detail::Png(detail),
    })
}

fn prefixed(what: &str, e: Error) -> Error {
    Error::new(e.kind, format!("{what}: {}", e.message))
}

fn jpeg_error(e: jpeg_decoder::Error) -> Error {
    let kind = match &e {
        jpeg_decoder::Error::Unsupported(_) => ErrorKind::Unsupported,
        jpeg_decoder::Error::Io(io) if io.kind() != std::io::ErrorKind::UnexpectedEof => {
            ErrorKind::Io
        }
        _ => ErrorKind::Corrupt,
    };
    Error::new(kind, format!("JPEG: {e}"))
}

fn png_error(e: png::DecodingError) -> Error {
    let kind = match &e {
        png::DecodingError::LimitsExceeded => ErrorKind::Hostile,
        png::DecodingError::IoError(io) if io.kind() != std::io::ErrorKind::UnexpectedEof => {
            ErrorKind::Io
        }
        png::DecodingError::Parameter(_) => ErrorKind::Internal,
        _ => ErrorKind::Corrupt,
    };
    Error::new(kind, format!("PNG: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dimension_checks() {
        assert!(check_dimensions(10, 10, 3, 8).is_ok());
        assert_eq!(
            check_dimensions(0, 10, 3, 8).unwrap_err().kind,
            ErrorKind::Corrupt
        );
        // 2^24 x 2^24 x 3 bands x 2 bytes > 2^48.
        let e = check_dimensions(1 << 24, 1 << 24, 3, 16).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Hostile);
        // The largest legal TIFF (2^32-1 square, 65535 bands of 128 bits) must not overflow.
        let e = check_dimensions(u64::from(u32::MAX), u64::from(u32::MAX), 65535, 128);
        assert_eq!(e.unwrap_err().kind, ErrorKind::Hostile);
    }

    #[test]
    fn truncated_png_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.png");
        std::fs::write(&p, b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0").unwrap();
        assert_eq!(probe_png(&p).unwrap_err().kind, ErrorKind::Corrupt);
    }

    #[test]
    fn truncated_jpeg_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.jpg");
        std::fs::write(&p, b"\xff\xd8\xff\xe0\0\x10JFIF").unwrap();
        assert_eq!(probe_jpeg(&p).unwrap_err().kind, ErrorKind::Corrupt);
    }
}
