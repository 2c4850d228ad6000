//! The JPEG 2000 encoder: OpenJPEG's J2K codec (through `openjpeg-sys`) fed one tile at a
//! time with `opj_write_tile`, never the whole image.
//!
//! Tiles are encoded in parallel, each by its own codec instance: the codec is set up for
//! a one-tile image placed at the tile's position on the reference grid (image offset =
//! tile origin, same tile size, levels, code-blocks, precincts and quantisation as the full
//! image), so the tile-parts it writes are exactly those of that tile in the full
//! codestream; only `Isot`, the tile index in each SOT marker, is rewritten. The main
//! header comes from a codec set up for the full image that never receives a tile. Why:
//! one OpenJPEG codec encodes tiles strictly one after another, and its internal threads
//! only cover the code-block and wavelet stages of a tile; encoding whole tiles side by
//! side keeps both cores busy through the colour transform, tier-2 and rate allocation
//! too, and a finished tile's memory is released at once.

use crate::opj;
use membudget::{Error, ErrorKind};
use openjpeg_sys as sys;
use std::ffi::{c_char, CString};
use std::ptr;

/// Progression orders (ISO 15444-1 A.6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Layer, resolution, component, position.
    Lrcp,
    /// Resolution, layer, component, position.
    Rlcp,
    /// Resolution, position, component, layer.
    Rpcl,
    /// Position, component, resolution, layer.
    Pcrl,
    /// Component, position, resolution, layer.
    Cprl,
}

impl Order {
    /// Parse `LRCP`, `rpcl`...
    pub fn parse(s: &str) -> Option<Order> {
        Some(match s.to_ascii_uppercase().as_str() {
            "LRCP" => Order::Lrcp,
            "RLCP" => Order::Rlcp,
            "RPCL" => Order::Rpcl,
            "PCRL" => Order::Pcrl,
            "CPRL" => Order::Cprl,
            _ => return None,
        })
    }
    /// The four-letter name.
    pub fn as_str(self) -> &'static str {
        match self {
            Order::Lrcp => "LRCP",
            Order::Rlcp => "RLCP",
            Order::Rpcl => "RPCL",
            Order::Pcrl => "PCRL",
            Order::Cprl => "CPRL",
        }
    }
    fn to_opj(self) -> sys::OPJ_PROG_ORDER {
        match self {
            Order::Lrcp => sys::PROG_ORDER::OPJ_LRCP,
            Order::Rlcp => sys::PROG_ORDER::OPJ_RLCP,
            Order::Rpcl => sys::PROG_ORDER::OPJ_RPCL,
            Order::Pcrl => sys::PROG_ORDER::OPJ_PCRL,
            Order::Cprl => sys::PROG_ORDER::OPJ_CPRL,
        }
    }
}

/// How quality layers are allocated.
#[derive(Debug, Clone, PartialEq)]
pub enum Quality {
    /// Every layer lossless-bound: `layers` layers, the last one lossless (reversible only).
    Lossless {
        /// Number of quality layers.
        layers: u32,
    },
    /// Compression ratio per layer, decreasing (e.g. `[64, 16, 4]`); 1 means lossless.
    Rates(Vec<f32>),
    /// PSNR in dB per layer, increasing; 0 means lossless.
    Psnr(Vec<f32>),
}

impl Quality {
    /// Number of quality layers.
    pub fn layers(&self) -> u32 {
        match self {
            Quality::Lossless { layers } => *layers,
            Quality::Rates(r) => r.len() as u32,
            Quality::Psnr(p) => p.len() as u32,
        }
    }
}

/// Where tile-parts are split (`--tileparts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TileParts {
    /// One tile-part per resolution level.
    Resolution,
    /// One tile-part per quality layer.
    Layer,
    /// One tile-part per component.
    Component,
}

impl TileParts {
    fn flag(self) -> c_char {
        (match self {
            TileParts::Resolution => b'R',
            TileParts::Layer => b'L',
            TileParts::Component => b'C',
        }) as c_char
    }
}

/// Everything the codestream's coding parameters depend on.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodeParams {
    /// Image width.
    pub width: u32,
    /// Image height.
    pub height: u32,
    /// Number of components.
    pub comps: u16,
    /// Bits per sample (1..=16), the same for every component.
    pub prec: u8,
    /// Signed components (two's complement samples in the planar buffers: OpenJPEG
    /// reads them as `i8`/`i16` and codes them without the DC level shift).
    pub signed: bool,
    /// Tile width and height.
    pub tile: (u32, u32),
    /// Decomposition levels (resolutions - 1), already capped.
    pub levels: u8,
    /// Code-block width and height (powers of two, 4..=1024, area <= 4096).
    pub codeblock: (u32, u32),
    /// Precinct sizes, highest resolution first; the last repeats for lower ones.
    /// Empty: one precinct per resolution (the maximum).
    pub precincts: Vec<(u32, u32)>,
    /// Progression order.
    pub order: Order,
    /// Layers and rate allocation.
    pub quality: Quality,
    /// 9/7 irreversible wavelet instead of 5/3 reversible.
    pub irreversible: bool,
    /// Multi-component transform (RCT or ICT) for 3+ component images.
    pub mct: bool,
    /// Start-of-packet markers.
    pub sop: bool,
    /// End-of-packet-header markers.
    pub eph: bool,
    /// Packet length markers in tile-part headers.
    pub plt: bool,
    /// Code-block style flags (bypass 1, reset 2, termall 4, vcausal 8, predictable
    /// termination 16, segmentation symbols 32).
    pub cblk_style: u8,
    /// Tile-part divisions.
    pub tileparts: Option<TileParts>,
}

impl EncodeParams {
    /// Number of tiles across and down.
    pub fn tile_grid(&self) -> (u32, u32) {
        (
            self.width.div_ceil(self.tile.0),
            self.height.div_ceil(self.tile.1),
        )
    }
    /// Bytes per sample in the planar buffers handed to OpenJPEG.
    pub fn sample_bytes(&self) -> usize {
        if self.prec <= 8 {
            1
        } else {
            2
        }
    }
    /// The image rectangle of tile `index`: `(x0, y0, x1, y1)`.
    pub fn tile_rect(&self, index: u32) -> (u32, u32, u32, u32) {
        let (tw, _) = self.tile_grid();
        let (tx, ty) = (index % tw, index / tw);
        let x0 = tx * self.tile.0;
        let y0 = ty * self.tile.1;
        (
            x0,
            y0,
            (x0 + self.tile.0).min(self.width),
            (y0 + self.tile.1).min(self.height),
        )
    }

    fn cparameters(&self) -> Result<sys::opj_cparameters_t, Error> {
        // SAFETY: opj_cparameters_t is plain data (integers, arrays, null pointers).
        let mut p: sys::opj_cparameters_t = unsafe { std::mem::zeroed() };
        // SAFETY: OpenJPEG's own initialiser fills the structure it is given.
        unsafe { sys::opj_set_default_encoder_parameters(&mut p) };
        p.tile_size_on = 1;
        p.cp_tdx = self.tile.0 as i32;
        p.cp_tdy = self.tile.1 as i32;
        p.numresolution = i32::from(self.levels) + 1;
        p.cblockw_init = self.codeblock.0 as i32;
        p.cblockh_init = self.codeblock.1 as i32;
        p.prog_order = self.order.to_opj();
        p.irreversible = i32::from(self.irreversible);
        p.tcp_mct = c_char::from(self.mct && self.comps >= 3);
        p.mode = i32::from(self.cblk_style);
        let mut csty = 0;
        if self.sop {
            csty |= 0x02;
        }
        if self.eph {
            csty |= 0x04;
        }
        if !self.precincts.is_empty() {
            csty |= 0x01;
            // One entry per resolution, the last given size repeated for the lower ones:
            // left to itself OpenJPEG halves the last size for each further resolution,
            // down to zero (and a failure) at 10 levels.
            let n = (usize::from(self.levels) + 1).min(33);
            let last = *self.precincts.last().expect("not empty");
            for i in 0..n {
                let (w, h) = self.precincts.get(i).copied().unwrap_or(last);
                p.prcw_init[i] = w as i32;
                p.prch_init[i] = h as i32;
            }
            p.res_spec = n as i32;
        }
        p.csty = csty;
        let layers = self.quality.layers().clamp(1, 100) as usize;
        p.tcp_numlayers = layers as i32;
        match &self.quality {
            Quality::Lossless { .. } => {
                // Lower layers get rates from 1:200 down to about 1:2.5 so each adds
                // detail; the last layer's rate 0 asks for everything (lossless).
                p.cp_disto_alloc = 1;
                if layers > 1 {
                    let lower = layer_rates(2.5, layers as u32 - 1);
                    for (i, r) in lower.iter().enumerate() {
                        p.tcp_rates[i] = *r;
                    }
                }
                p.tcp_rates[layers - 1] = 0.0;
            }
            Quality::Rates(rates) => {
                p.cp_disto_alloc = 1;
                for (i, r) in rates.iter().take(layers).enumerate() {
                    p.tcp_rates[i] = *r;
                }
            }
            Quality::Psnr(psnr) => {
                p.cp_fixed_quality = 1;
                for (i, q) in psnr.iter().take(layers).enumerate() {
                    p.tcp_distoratio[i] = *q;
                }
            }
        }
        if let Some(tp) = self.tileparts {
            p.tp_on = 1;
            p.tp_flag = tp.flag();
        }
        // cp_comment stays null: OpenJPEG then writes its own "Created by OpenJPEG
        // version ..." COM marker, which says which encoder made the file.
        Ok(p)
    }
}

/// One OpenJPEG compressor with its image and in-memory output stream; everything is
/// freed on drop (fields in this order: the stream before the codec and image).
#[derive(Debug)]
struct Codec {
    stream: opj::Stream,
    codec: opj::Codec,
    image: opj::Image,
}

impl Codec {
    /// A compressor for the image rectangle `(x0, y0, x1, y1)` of the reference grid with
    /// the tile grid anchored at `(tx0, ty0)`, its main header already written.
    fn start(
        params: &EncodeParams,
        rect: (u32, u32, u32, u32),
        tile_origin: (u32, u32),
        threads: usize,
        extra: &[&str],
    ) -> Result<Codec, Error> {
        let (x0, y0, x1, y1) = rect;
        let mut comps: Vec<sys::opj_image_cmptparm_t> = (0..params.comps)
            .map(|_| {
                // SAFETY: plain data (integers), valid when zeroed.
                let mut cp: sys::opj_image_cmptparm_t = unsafe { std::mem::zeroed() };
                cp.dx = 1;
                cp.dy = 1;
                cp.w = x1 - x0;
                cp.h = y1 - y0;
                cp.x0 = x0;
                cp.y0 = y0;
                cp.prec = u32::from(params.prec);
                cp.sgnd = u32::from(params.signed);
                cp
            })
            .collect();
        let space = if params.comps >= 3 {
            sys::COLOR_SPACE::OPJ_CLRSPC_SRGB
        } else {
            sys::COLOR_SPACE::OPJ_CLRSPC_GRAY
        };
        let mut p = params.cparameters()?;
        p.cp_tx0 = tile_origin.0 as i32;
        p.cp_ty0 = tile_origin.1 as i32;
        let mut image = opj::Image::tile_image(&mut comps, space)?;
        if let Some(img) = image.get_mut() {
            img.x0 = x0;
            img.y0 = y0;
            img.x1 = x1;
            img.y1 = y1;
        }
        let c = Codec {
            stream: opj::Stream::to_memory()?,
            codec: opj::Codec::compressor()?,
            image,
        };
        // SAFETY: codec and image are live (owned by `c`); OpenJPEG copies the
        // parameters and the image header.
        if unsafe { sys::opj_setup_encoder(c.codec.as_ptr(), &mut p, c.image.as_ptr()) } == 0 {
            return Err(c.failure("setting up the encoder"));
        }
        if !extra.is_empty() {
            let owned: Vec<CString> = extra
                .iter()
                .map(|s| CString::new(*s).expect("option without NUL"))
                .collect();
            let mut ptrs: Vec<*const c_char> = owned.iter().map(|s| s.as_ptr()).collect();
            ptrs.push(ptr::null());
            // SAFETY: a live codec and a null-terminated array of NUL-terminated strings
            // (`owned` outlives the call).
            if unsafe { sys::opj_encoder_set_extra_options(c.codec.as_ptr(), ptrs.as_ptr()) } == 0 {
                return Err(c.failure("setting encoder options"));
            }
        }
        if threads > 1 {
            // SAFETY: a live codec, set up, not started.
            unsafe { sys::opj_codec_set_threads(c.codec.as_ptr(), threads as i32) };
        }
        // SAFETY: codec, image and stream are live, in the order OpenJPEG documents
        // (create, setup, start).
        let started = unsafe {
            sys::opj_start_compress(c.codec.as_ptr(), c.image.as_ptr(), c.stream.as_ptr())
        };
        if started == 0 {
            return Err(c.failure("starting compression"));
        }
        Ok(c)
    }

    fn failure(&self, what: &str) -> Error {
        let detail = match self.codec.errors() {
            "" => "OpenJPEG gave no reason",
            e => e,
        };
        Error::new(
            ErrorKind::Internal,
            format!("JPEG 2000 encoder failed {what}: {detail}"),
        )
    }

    /// End compression and take the codestream.
    fn finish(mut self) -> Result<Vec<u8>, Error> {
        // SAFETY: codec and stream are live and compression was started (in `start`).
        if unsafe { sys::opj_end_compress(self.codec.as_ptr(), self.stream.as_ptr()) } == 0 {
            return Err(self.failure("ending compression"));
        }
        // opj_end_compress flushes: the sink holds every byte.
        Ok(self.stream.take_bytes())
    }
}

/// The extra options OpenJPEG takes as strings.
fn extra_options(params: &EncodeParams) -> Vec<&'static str> {
    let mut v = Vec::new();
    if params.plt {
        v.push("PLT=YES");
    }
    v
}

/// The main header of the full image's codestream (SOC up to, not including, the first
/// SOT). It is written by a codec set up for the first tile alone (ended without tiles),
/// then its SIZ image size is set to the full image: every other marker (COD, QCD, COM)
/// depends only on the coding parameters, and a codec set up for the whole image would
/// allocate about 6 KB of state per tile (65,535 tiles: 400 MB) just to write this.
pub fn main_header(params: &EncodeParams) -> Result<Vec<u8>, Error> {
    let first = params.tile_rect(0);
    let c = Codec::start(params, first, (0, 0), 1, &extra_options(params))?;
    let bytes = c.finish()?;
    // What an ended codec without tiles wrote: the main header, then EOC.
    let end = header_end(&bytes)?;
    let mut h = bytes[..end].to_vec();
    // SOC (2 bytes), then SIZ: marker, Lsiz, Rsiz, Xsiz (bytes 8..12), Ysiz (12..16).
    if h.get(2..4) != Some(&[0xFF, 0x51]) || h.len() < 16 {
        return Err(Error::new(
            ErrorKind::Internal,
            "encoder wrote no SIZ marker first",
        ));
    }
    h[8..12].copy_from_slice(&params.width.to_be_bytes());
    h[12..16].copy_from_slice(&params.height.to_be_bytes());
    Ok(h)
}

/// Where the main header ends: the offset of the first SOT or of EOC, walking marker
/// segments by their lengths from SOC.
fn header_end(cs: &[u8]) -> Result<usize, Error> {
    let bad = || Error::new(ErrorKind::Internal, "encoder wrote a malformed main header");
    if cs.get(..2) != Some(&[0xFF, 0x4F]) {
        return Err(bad());
    }
    let mut p = 2;
    loop {
        let m = cs.get(p..p + 2).ok_or_else(bad)?;
        if m[0] != 0xFF {
            return Err(bad());
        }
        if m[1] == 0x90 || m[1] == 0xD9 {
            return Ok(p);
        }
        let len = cs.get(p + 2..p + 4).ok_or_else(bad)?;
        p += 2 + usize::from(u16::from_be_bytes([len[0], len[1]]));
    }
}

/// One encoded tile: its tile-parts, ready to append to the codestream, and each
/// tile-part's length (for TLM markers).
#[derive(Debug)]
pub struct EncodedTile {
    /// Tile index in raster order.
    pub index: u32,
    /// The tile-parts (SOT ... data), `Isot` already set to `index`.
    pub bytes: Vec<u8>,
    /// Length of each tile-part.
    pub parts: Vec<u32>,
}

/// Encode tile `index` from planar samples (component after component, each row-major,
/// 1 byte per sample for precision <= 8, else 2 bytes native-endian).
pub fn encode_tile(
    params: &EncodeParams,
    index: u32,
    planar: &mut [u8],
    threads: usize,
) -> Result<EncodedTile, Error> {
    let rect = params.tile_rect(index);
    let (x0, y0, _, _) = rect;
    let expect = (rect.2 - rect.0) as usize
        * (rect.3 - rect.1) as usize
        * usize::from(params.comps)
        * params.sample_bytes();
    if planar.len() != expect {
        return Err(Error::new(
            ErrorKind::Internal,
            format!(
                "tile {index}: {} bytes of samples, {expect} expected",
                planar.len()
            ),
        ));
    }
    let c = Codec::start(params, rect, (x0, y0), threads, &extra_options(params))?;
    // SAFETY: codec and stream are live and started; `planar` holds exactly the bytes
    // OpenJPEG expects for this one-tile image (checked above).
    let ok = unsafe {
        sys::opj_write_tile(
            c.codec.as_ptr(),
            0,
            planar.as_mut_ptr(),
            planar.len() as u32,
            c.stream.as_ptr(),
        )
    };
    if ok == 0 {
        return Err(c.failure(&format!("writing tile {index}")));
    }
    let cs = c.finish()?;
    let start = header_end(&cs)?;
    let mut parts = Vec::new();
    let mut out = cs[start..].to_vec();
    // Rewrite Isot in each tile-part and drop the trailing EOC.
    let mut p = 0;
    loop {
        match out.get(p..p + 2) {
            Some([0xFF, 0x90]) => {}
            Some([0xFF, 0xD9]) => break,
            _ => {
                return Err(Error::new(
                    ErrorKind::Internal,
                    format!("tile {index}: encoder wrote an unexpected tile-part"),
                ))
            }
        }
        let psot = u32::from_be_bytes([out[p + 6], out[p + 7], out[p + 8], out[p + 9]]);
        if psot < 14 || p + psot as usize > out.len() {
            return Err(Error::new(
                ErrorKind::Internal,
                format!("tile {index}: tile-part length {psot} out of range"),
            ));
        }
        out[p + 4..p + 6].copy_from_slice(&(index as u16).to_be_bytes());
        parts.push(psot);
        p += psot as usize;
    }
    out.truncate(p);
    Ok(EncodedTile {
        index,
        bytes: out,
        parts,
    })
}

/// The largest number of decomposition levels the tile and image sizes allow: every
/// resolution must keep at least one sample across the smaller tile side, and more levels
/// than the image's smaller side supports only add empty resolutions.
pub fn max_levels(width: u32, height: u32, tile: (u32, u32)) -> u8 {
    let side = tile
        .0
        .min(tile.1)
        .min(width.max(1))
        .min(height.max(1))
        .max(1);
    // floor(log2(side)), at most 32 resolutions.
    (31 - side.leading_zeros()).min(32) as u8
}

/// Layer ratios from the coarsest to the final `ratio`, spaced evenly in log scale over
/// `layers` layers from `ratio x 2^(layers-1)`... capped at 1:200 for the first layer (so
/// every layer carries something useful).
pub fn layer_rates(ratio: f32, layers: u32) -> Vec<f32> {
    let layers = layers.max(1);
    if layers == 1 {
        return vec![ratio];
    }
    let first = (ratio * 2f32.powi(layers as i32 - 1)).min(200.0).max(ratio);
    let step = (first / ratio).ln() / (layers - 1) as f32;
    (0..layers)
        .map(|i| {
            let r = first / (step * i as f32).exp();
            (r * 100.0).round() / 100.0
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(w: u32, h: u32) -> EncodeParams {
        EncodeParams {
            width: w,
            height: h,
            comps: 3,
            prec: 8,
            signed: false,
            tile: (64, 64),
            levels: 3,
            codeblock: (32, 32),
            precincts: vec![],
            order: Order::Rpcl,
            quality: Quality::Lossless { layers: 1 },
            irreversible: false,
            mct: true,
            sop: true,
            eph: true,
            plt: false,
            cblk_style: 0,
            tileparts: None,
        }
    }

    #[test]
    fn tile_rects_cover_the_image() {
        let p = params(100, 70);
        assert_eq!(p.tile_grid(), (2, 2));
        assert_eq!(p.tile_rect(0), (0, 0, 64, 64));
        assert_eq!(p.tile_rect(3), (64, 64, 100, 70));
    }

    #[test]
    fn levels_are_capped_by_tile_and_image() {
        assert_eq!(max_levels(10240, 10240, (1024, 1024)), 10);
        assert_eq!(max_levels(100, 3000, (1024, 1024)), 6);
        assert_eq!(max_levels(1, 1, (1024, 1024)), 0);
    }

    #[test]
    fn patched_header_equals_a_whole_image_codec_header() {
        for p in [params(100, 70), params(1000, 333)] {
            let c = Codec::start(&p, (0, 0, p.width, p.height), (0, 0), 1, &[]).unwrap();
            let whole = c.finish().unwrap();
            let whole = whole[..header_end(&whole).unwrap()].to_vec();
            assert_eq!(main_header(&p).unwrap(), whole);
        }
    }

    #[test]
    fn tiles_encode_with_their_index() {
        let p = params(100, 70);
        let header = main_header(&p).unwrap();
        assert_eq!(&header[..4], &[0xFF, 0x4F, 0xFF, 0x51]);
        let (x0, y0, x1, y1) = p.tile_rect(3);
        let n = ((x1 - x0) * (y1 - y0) * 3) as usize;
        let mut data: Vec<u8> = (0..n).map(|i| (i * 7 % 251) as u8).collect();
        let t = encode_tile(&p, 3, &mut data, 1).unwrap();
        assert_eq!(&t.bytes[..2], &[0xFF, 0x90]);
        assert_eq!(u16::from_be_bytes([t.bytes[4], t.bytes[5]]), 3);
        assert_eq!(t.parts.iter().sum::<u32>() as usize, t.bytes.len());
    }
}
