//! `--verify`: decode the written JP2 tile by tile with OpenJPEG (bounded memory: one tile
//! and one band of the source at a time) and compare with the TIFF read a second,
//! independent way: by libtiff (loaded at run time, see [`LibTiff`]), which shares no
//! decoding or conversion code with the reader that made the output (the tiff crate and
//! `raster::tiff`). Only the documented mappings are redone here, by their own code: bit
//! unpacking, WhiteIsZero inversion, palette expansion; YCbCr JPEG is converted by libtiff
//! itself (JPEGCOLORMODE_RGB); CMYK with an embedded profile is converted to sRGB here
//! by lcms2 with the profile as libtiff reads it (the same library as the converter's,
//! so this checks the samples, their order and the alpha, not lcms2). When libtiff is missing or lacks the file's codec, the
//! output is compared with strip-convert's own reader and the status is `partial`, never
//! `ok`. Lossless output must match exactly; lossy output is measured by MSE, PSNR and
//! SSIM ([`raster::metrics`]: the mean over components of the mean SSIM of the 7x7
//! windows that fit inside each tile) and judged against thresholds.

use crate::encode::EncodeParams;
use crate::opj;
use membudget::{Error, ErrorKind};
use openjpeg_sys as sys;
use raster::metrics::{self, Diff};
use raster::tiff::TiffPage;
use raster::Band;
use serde::Serialize;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::Path;
use std::ptr;

/// Acceptance thresholds for lossy output.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// Lowest PSNR in dB.
    pub min_psnr: f64,
    /// Lowest SSIM.
    pub min_ssim: f64,
}

/// The `verification` section of a record.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// `ok`, `warn` (lossy below a threshold), `fail` (lossless mismatch) or `partial`
    /// (matched, but only against strip-convert's own reader: see `reference`).
    pub status: &'static str,
    /// What the output was compared with: `libtiff <version>`, or why not and
    /// `strip-convert's reader`.
    pub reference: String,
    /// `exact` (lossless) or `metrics` (lossy).
    pub mode: &'static str,
    /// Samples that differ.
    pub differing_samples: u64,
    /// Mean squared error over every sample.
    pub mse: f64,
    /// PSNR in dB (`null` when identical).
    pub psnr: Option<f64>,
    /// Mean SSIM over components.
    pub ssim: f64,
    /// Tiles decoded.
    pub tiles: u32,
    /// What was found, in words.
    pub message: String,
}

/// The output decoded tile by tile. Fields in drop order: the image, the codec, then
/// the stream it reads.
struct Decoder {
    image: opj::Image,
    codec: opj::Codec,
    stream: opj::Stream,
}

impl Decoder {
    fn open(path: &Path) -> Result<Decoder, Error> {
        let stream = opj::Stream::read_file(path)
            .map_err(|_| Error::new(ErrorKind::Io, "cannot open the JP2 for verification"))?;
        let mut d = Decoder {
            image: opj::Image::empty(),
            codec: opj::Codec::jp2_decompressor()?,
            stream,
        };
        // SAFETY: opj_dparameters_t is plain data (integers, arrays, null pointers).
        let mut p: sys::opj_dparameters_t = unsafe { std::mem::zeroed() };
        // SAFETY: OpenJPEG's own initialiser fills the structure it is given.
        unsafe { sys::opj_set_default_decoder_parameters(&mut p) };
        // SAFETY: a live codec, not set up yet; OpenJPEG copies the parameters.
        if unsafe { sys::opj_setup_decoder(d.codec.as_ptr(), &mut p) } == 0 {
            return Err(d.fail("setting up the decoder"));
        }
        let (stream, codec) = (d.stream.as_ptr(), d.codec.as_ptr());
        // SAFETY: live stream and set-up codec; the header's image is stored in `d.image`,
        // which frees it.
        if unsafe { sys::opj_read_header(stream, codec, d.image.slot()) } == 0 {
            return Err(d.fail("reading the header"));
        }
        Ok(d)
    }

    fn fail(&self, what: &str) -> Error {
        Error::new(
            ErrorKind::Verify,
            format!(
                "verification could not decode the output ({what}): {}",
                self.codec.errors()
            ),
        )
    }

    /// Decode tile `index`; the samples are then in `image.comps[c].data`.
    fn tile(&mut self, index: u32) -> Result<(), Error> {
        // SAFETY: codec, stream and image are live and the header was read; OpenJPEG
        // reallocates the components' data for the tile.
        let ok = unsafe {
            sys::opj_get_decoded_tile(
                self.codec.as_ptr(),
                self.stream.as_ptr(),
                self.image.as_ptr(),
                index,
            )
        };
        if ok == 0 {
            return Err(self.fail(&format!("tile {index}")));
        }
        Ok(())
    }

    /// Component `c`'s decoded samples and their width and height.
    fn comp(&self, c: usize) -> Option<(&[i32], usize, usize)> {
        let img = self.image.get()?;
        if c >= img.numcomps as usize || img.comps.is_null() {
            return None;
        }
        // SAFETY: `comps` points at `numcomps` components (OpenJPEG's image layout).
        let comp = unsafe { &*img.comps.add(c) };
        if comp.data.is_null() {
            return None;
        }
        let (w, h) = (comp.w as usize, comp.h as usize);
        // SAFETY: a decoded component's `data` holds `w * h` samples, alive until the
        // next decode, which needs `&mut self`.
        Some((
            unsafe { std::slice::from_raw_parts(comp.data, w * h) },
            w,
            h,
        ))
    }
}

/// The source as the verification reads it: libtiff, or (partial) strip-convert's reader.
enum Reference {
    LibTiff(LibTiffPage),
    Own(Box<TiffPage>),
}

impl Reference {
    /// Rows `y0 .. y0 + rows` into `band` (one byte per sample up to 8 bits, else two).
    fn read(&mut self, y0: u32, rows: u32, band: &mut Band) -> Result<(), Error> {
        match self {
            Reference::LibTiff(t) => t.read(y0, rows, band),
            Reference::Own(page) => page.read_band(y0, rows, band),
        }
    }
}

/// Largest difference allowed between two JPEG decoders' samples (measured: 4 between
/// zune-jpeg and libjpeg-turbo on 2x2-subsampled YCbCr, 1 on RGB).
const JPEG_MAX_DIFF: i32 = 6;
/// Largest mean absolute difference allowed between two JPEG decoders (measured: 0.15).
const JPEG_MEAN_DIFF: f64 = 0.5;

/// Decode `jp2` and compare it with page `index` of `tiff`.
pub fn verify(
    jp2: &Path,
    tiff: &Path,
    index: usize,
    params: &EncodeParams,
    t: &Thresholds,
) -> Result<Verification, Error> {
    // The conversion's freed heap is still resident; give it back before libtiff and its
    // codec libraries are mapped, so that they do not add to it in the peak RSS.
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free heap memory.
    unsafe {
        libc::malloc_trim(0);
    }
    let mut dec = Decoder::open(jp2)?;
    let mut jpeg = false;
    let (mut src, reference, partial) = match LibTiffPage::open(tiff, index) {
        Ok(p) => {
            let name = format!("libtiff {}", p.lib.version);
            jpeg = p.jpeg;
            (Reference::LibTiff(p), name, None)
        }
        Err(why) => (
            Reference::Own(Box::new({
                let offsets = raster::tiff::page_offsets(tiff)?;
                let ifd = *offsets.get(index).ok_or_else(|| {
                    Error::new(
                        ErrorKind::Verify,
                        format!("the source has no page {}", index + 1),
                    )
                })?;
                TiffPage::open_at_with(tiff, index, ifd, raster::tiff::Samples::KeepSigned)?
            })),
            format!("strip-convert's reader ({why})"),
            Some(why),
        ),
    };
    if let Reference::LibTiff(p) = &src {
        // The sample format as libtiff reads it, not as the converter did.
        if p.signed != params.signed {
            return Err(Error::new(
                ErrorKind::Verify,
                format!(
                    "the source's samples are {} as {reference} reads them, the output's {}",
                    if p.signed { "signed" } else { "unsigned" },
                    if params.signed { "signed" } else { "unsigned" }
                ),
            ));
        }
    }
    let comps = usize::from(params.comps);
    let mut acc = vec![Diff::default(); comps];
    let (across, down) = params.tile_grid();
    let mut band = Band::default();
    let peak = f64::from((1u32 << params.prec) - 1);
    for row in 0..down {
        let (_, y0, _, y1) = params.tile_rect(row * across);
        src.read(y0, y1 - y0, &mut band)?;
        if band.planes.len() != comps {
            return Err(Error::new(
                ErrorKind::Verify,
                format!(
                    "the source has {} components as {reference} reads it, the output {comps}",
                    band.planes.len()
                ),
            ));
        }
        let rows = (y1 - y0) as usize;
        let bw = params.width as usize;
        for col in 0..across {
            let index = row * across + col;
            let (x0, _, x1, _) = params.tile_rect(index);
            dec.tile(index)?;
            for (c, a) in acc.iter_mut().enumerate() {
                let (data, w, h) = dec
                    .comp(c)
                    .ok_or_else(|| dec.fail(&format!("component {c} missing")))?;
                if w != (x1 - x0) as usize || h != rows {
                    return Err(Error::new(
                        ErrorKind::Verify,
                        format!("tile {index}: decoded {w}x{h}, expected {}x{rows}", x1 - x0),
                    ));
                }
                let plane = &band.planes[c];
                let mut orig = vec![0i32; w * h];
                for y in 0..h {
                    for x in 0..w {
                        let i = y * bw + x0 as usize + x;
                        // Signed samples are two's complement bytes or words (8 or 16
                        // bits), as OpenJPEG decodes them: sign-extended.
                        orig[y * w + x] = match (band.sample_bytes, params.signed) {
                            (1, false) => i32::from(plane[i]),
                            (1, true) => i32::from(plane[i] as i8),
                            (_, false) => {
                                i32::from(u16::from_ne_bytes([plane[2 * i], plane[2 * i + 1]]))
                            }
                            (_, true) => {
                                i32::from(i16::from_ne_bytes([plane[2 * i], plane[2 * i + 1]]))
                            }
                        };
                    }
                }
                a.add(&orig, data);
                if params.irreversible {
                    a.add_ssim(&orig, data, w, h, peak);
                }
            }
        }
    }
    let total = Diff::total(&acc);
    let differing = total.differing;
    let mse = total.mse();
    let psnr = metrics::psnr(mse, peak);
    let ssim = if params.irreversible {
        acc.iter().map(Diff::ssim).sum::<f64>() / comps as f64
    } else if differing == 0 {
        1.0
    } else {
        f64::NAN
    };
    let tiles = across * down;
    let max_abs = total.max_abs;
    let mean_abs = total.abs_sum / total.samples.max(1) as f64;
    let mut v = if !params.irreversible && jpeg {
        // JPEG-compressed source: the samples are the JPEG decoder's (chroma upsampling
        // and IDCT are its choice), so two decoders agree only within a tolerance; a
        // wrong colour conversion is off by tens of levels.
        let ok = max_abs <= JPEG_MAX_DIFF && mean_abs <= JPEG_MEAN_DIFF;
        Verification {
            status: if ok { "ok" } else { "fail" },
            reference: reference.clone(),
            mode: "jpeg-tolerance",
            differing_samples: differing,
            mse,
            psnr,
            ssim: if ssim.is_nan() { 0.0 } else { ssim },
            tiles,
            message: format!(
                "JPEG-compressed source: largest difference {max_abs}, mean {mean_abs:.3} \
                 from the source as {reference} decodes it (tolerance {JPEG_MAX_DIFF} and \
                 {JPEG_MEAN_DIFF} between JPEG decoders)"
            ),
        }
    } else if !params.irreversible {
        if differing == 0 {
            Verification {
                status: "ok",
                reference: reference.clone(),
                mode: "exact",
                differing_samples: 0,
                mse: 0.0,
                psnr: None,
                ssim: 1.0,
                tiles,
                message: format!(
                    "lossless: every sample matches the source as {reference} reads it"
                ),
            }
        } else {
            Verification {
                status: "fail",
                reference: reference.clone(),
                mode: "exact",
                differing_samples: differing,
                mse,
                psnr,
                ssim: if ssim.is_nan() { 0.0 } else { ssim },
                tiles,
                message: format!(
                    "lossless output differs in {differing} samples from the source as \
                     {reference} reads it"
                ),
            }
        }
    } else {
        let p = psnr.unwrap_or(f64::INFINITY);
        let ok = p >= t.min_psnr && ssim >= t.min_ssim;
        Verification {
            status: if ok { "ok" } else { "warn" },
            reference: reference.clone(),
            mode: "metrics",
            differing_samples: differing,
            mse,
            psnr,
            ssim,
            tiles,
            message: format!(
                "PSNR {} dB (min {}), SSIM {ssim:.4} (min {}) against {reference}",
                psnr.map(|p| format!("{p:.2}"))
                    .unwrap_or_else(|| "inf".into()),
                t.min_psnr,
                t.min_ssim
            ),
        }
    };
    if let (Some(why), "ok") = (&partial, v.status) {
        v.status = "partial";
        v.message = format!(
            "{}; not independent: {why}, so the source was read by the same code that \
             made the output",
            v.message
        );
    }
    Ok(v)
}

/// libtiff's C API, loaded with `dlopen` when `--verify` first needs it (no build-time
/// dependency: without libtiff, verification is `partial`). Only the calls used here.
struct LibTiff {
    version: String,
    open: unsafe extern "C" fn(*const c_char, *const c_char) -> *mut c_void,
    close: unsafe extern "C" fn(*mut c_void),
    set_directory: unsafe extern "C" fn(*mut c_void, u32) -> c_int,
    get_field_defaulted: unsafe extern "C" fn(*mut c_void, u32, ...) -> c_int,
    set_field: unsafe extern "C" fn(*mut c_void, u32, ...) -> c_int,
    is_tiled: unsafe extern "C" fn(*mut c_void) -> c_int,
    scanline_size: unsafe extern "C" fn(*mut c_void) -> i64,
    read_scanline: unsafe extern "C" fn(*mut c_void, *mut c_void, u32, u16) -> c_int,
    tile_size: unsafe extern "C" fn(*mut c_void) -> i64,
    read_tile: unsafe extern "C" fn(*mut c_void, *mut c_void, u32, u32, u32, u16) -> i64,
    codec_configured: unsafe extern "C" fn(u16) -> c_int,
}

impl LibTiff {
    /// The process-wide library, loaded once; `Err` says why it is not there.
    fn get() -> Result<&'static LibTiff, String> {
        static LIB: std::sync::OnceLock<Result<LibTiff, String>> = std::sync::OnceLock::new();
        LIB.get_or_init(Self::load).as_ref().map_err(Clone::clone)
    }

    // The struct's field types are the transmutes' target types.
    #[allow(clippy::missing_transmute_annotations)]
    fn load() -> Result<LibTiff, String> {
        // Test builds only: verification without libtiff, for the `partial` test.
        #[cfg(debug_assertions)]
        if std::env::var_os("STRIP_CONVERT_TEST_NO_LIBTIFF").is_some() {
            return Err("libtiff disabled for a test".into());
        }
        let names: &[&[u8]] = &[b"libtiff.so.6\0", b"libtiff.so.5\0", b"libtiff.so\0"];
        // SAFETY: dlopen with NUL-terminated names; the handle is never closed, so the
        // function pointers taken from it stay valid for the life of the process.
        let handle = names
            .iter()
            // SAFETY: as above.
            .map(|n| unsafe { libc::dlopen(n.as_ptr().cast(), libc::RTLD_LAZY | libc::RTLD_LOCAL) })
            .find(|h| !h.is_null())
            .ok_or("libtiff (libtiff.so.6 or .5) is not installed")?;
        let sym = |name: &[u8]| -> Result<*mut c_void, String> {
            // SAFETY: a valid handle and a NUL-terminated name.
            let p = unsafe { libc::dlsym(handle, name.as_ptr().cast()) };
            if p.is_null() {
                Err(format!(
                    "libtiff lacks {}",
                    String::from_utf8_lossy(&name[..name.len() - 1])
                ))
            } else {
                Ok(p)
            }
        };
        // SAFETY: each symbol is transmuted to the signature libtiff 4 declares for it
        // in tiffio.h (tdir_t and uint32 as u32, tmsize_t as i64 on 64-bit Linux).
        let lib = unsafe {
            let silence: unsafe extern "C" fn(*mut c_void) -> *mut c_void =
                std::mem::transmute(sym(b"TIFFSetErrorHandler\0")?);
            // libtiff's default handlers print to stderr; the record carries the outcome.
            silence(ptr::null_mut());
            let warn: unsafe extern "C" fn(*mut c_void) -> *mut c_void =
                std::mem::transmute(sym(b"TIFFSetWarningHandler\0")?);
            warn(ptr::null_mut());
            let version: unsafe extern "C" fn() -> *const c_char =
                std::mem::transmute(sym(b"TIFFGetVersion\0")?);
            let v = CStr::from_ptr(version()).to_string_lossy();
            // "LIBTIFF, Version 4.5.0\nCopyright..."
            let v = v
                .lines()
                .next()
                .and_then(|l| l.rsplit(' ').next())
                .unwrap_or("")
                .to_string();
            LibTiff {
                version: v,
                open: std::mem::transmute(sym(b"TIFFOpen\0")?),
                close: std::mem::transmute(sym(b"TIFFClose\0")?),
                set_directory: std::mem::transmute(sym(b"TIFFSetDirectory\0")?),
                get_field_defaulted: std::mem::transmute(sym(b"TIFFGetFieldDefaulted\0")?),
                set_field: std::mem::transmute(sym(b"TIFFSetField\0")?),
                is_tiled: std::mem::transmute(sym(b"TIFFIsTiled\0")?),
                scanline_size: std::mem::transmute(sym(b"TIFFScanlineSize\0")?),
                read_scanline: std::mem::transmute(sym(b"TIFFReadScanline\0")?),
                tile_size: std::mem::transmute(sym(b"TIFFTileSize\0")?),
                read_tile: std::mem::transmute(sym(b"TIFFReadTile\0")?),
                codec_configured: std::mem::transmute(sym(b"TIFFIsCODECConfigured\0")?),
            }
        };
        Ok(lib)
    }
}

/// Store output sample `at` of component `c` (one or two native-endian bytes).
fn set(band: &mut Band, c: usize, at: usize, v: i32) {
    let two = band.sample_bytes == 2;
    if let Some(p) = band.planes.get_mut(c) {
        if two {
            if let Some(d) = p.get_mut(2 * at..2 * at + 2) {
                d.copy_from_slice(&(v as u16).to_ne_bytes());
            }
        } else if let Some(d) = p.get_mut(at) {
            *d = v as u8;
        }
    }
}

/// One page of a TIFF open in libtiff, read band by band into planes of output samples.
struct LibTiffPage {
    lib: &'static LibTiff,
    tif: *mut c_void,
    /// Planar strips: one more handle per plane after the first, so that each plane is
    /// read sequentially (libtiff's codecs cannot seek inside a strip).
    more: Vec<*mut c_void>,
    /// JPEG-compressed: the samples depend on the JPEG decoder.
    jpeg: bool,
    /// SampleFormat is signed integer (2).
    signed: bool,
    width: u32,
    bits: u16,
    spp: u16,
    separate: bool,
    /// `(tile width, tile height)` when tiled.
    tile: Option<(u32, u32)>,
    photometric: u16,
    /// Palette: the colour map (r, g, b, 2^bits entries each) and whether every entry
    /// is an exact 8-bit value (then output 8-bit, as the converter's rule says).
    map: Option<([Vec<u16>; 3], bool)>,
    /// CMYK: the embedded profile's transform to sRGB.
    cmyk: Option<CmykTransform>,
    buf: Vec<u8>,
}

impl Drop for LibTiffPage {
    fn drop(&mut self) {
        // SAFETY: opened by TIFFOpen, closed once.
        unsafe {
            (self.lib.close)(self.tif);
            for &t in &self.more {
                (self.lib.close)(t);
            }
        }
    }
}

impl LibTiffPage {
    fn open(path: &Path, index: usize) -> Result<LibTiffPage, String> {
        let lib = LibTiff::get()?;
        let cpath = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| "the path contains NUL".to_string())?;
        // Mode `m`: no memory mapping, whose touched pages would count in the peak RSS
        // the budget holds (the whole file, read once).
        // SAFETY: NUL-terminated path and mode.
        let tif = unsafe { (lib.open)(cpath.as_ptr(), c"rm".as_ptr()) };
        if tif.is_null() {
            return Err("libtiff cannot open the file".into());
        }
        let mut page = LibTiffPage {
            lib,
            tif,
            more: Vec::new(),
            jpeg: false,
            signed: false,
            width: 0,
            bits: 0,
            spp: 0,
            separate: false,
            tile: None,
            photometric: 0,
            map: None,
            cmyk: None,
            buf: Vec::new(),
        };
        let dir = u32::try_from(index).map_err(|_| "page number too large".to_string())?;
        // SAFETY: tif is open; each TIFFGetFieldDefaulted gets the pointer type tiffio.h
        // documents for the tag (uint32* for sizes, uint16* for the others).
        unsafe {
            if (lib.set_directory)(tif, dir) == 0 {
                return Err(format!("libtiff cannot read page {}", index + 1));
            }
            let u32_tag = |tag: u32| {
                let mut v = 0u32;
                ((lib.get_field_defaulted)(tif, tag, &mut v as *mut u32) != 0).then_some(v)
            };
            let u16_tag = |tag: u32| {
                let mut v = 0u16;
                ((lib.get_field_defaulted)(tif, tag, &mut v as *mut u16) != 0).then_some(v)
            };
            page.width = u32_tag(256).ok_or("no image width")?;
            page.bits = u16_tag(258).unwrap_or(1);
            page.spp = u16_tag(277).unwrap_or(1);
            page.separate = u16_tag(284) == Some(2);
            page.photometric = u16_tag(262).ok_or("no photometric interpretation")?;
            page.signed = u16_tag(339) == Some(2);
            let compression = u16_tag(259).unwrap_or(1);
            page.jpeg = matches!(compression, 6 | 7);
            if (lib.codec_configured)(compression) == 0 {
                return Err(format!(
                    "this libtiff has no decoder for compression {compression}"
                ));
            }
            if (lib.is_tiled)(tif) != 0 {
                page.tile = Some((
                    u32_tag(322).ok_or("no tile width")?,
                    u32_tag(323).ok_or("no tile length")?,
                ));
            }
            if page.photometric == 6 && compression == 7 {
                // JPEGCOLORMODE = JPEGCOLORMODE_RGB: libjpeg converts YCbCr to RGB.
                if (lib.set_field)(tif, 65538, 1 as c_int) == 0 {
                    return Err("libtiff cannot convert this YCbCr JPEG to RGB".into());
                }
                page.photometric = 2;
            } else if page.photometric == 6 {
                return Err("YCbCr other than JPEG-compressed".into());
            }
            if page.photometric == 5 {
                let mut len = 0u32;
                let mut data: *mut c_void = ptr::null_mut();
                let (pl, pd): (*mut u32, *mut *mut c_void) = (&mut len, &mut data);
                // TIFFTAG_ICCPROFILE: a count and a pointer to libtiff's copy.
                if (lib.get_field_defaulted)(tif, 34675, pl, pd) == 0 || data.is_null() {
                    return Err("CMYK without an ICC profile".into());
                }
                let icc = std::slice::from_raw_parts(data.cast::<u8>(), len as usize);
                page.cmyk = Some(CmykTransform::new(icc, page.bits)?);
            }
            if page.photometric == 3 {
                let mut r: *mut u16 = ptr::null_mut();
                let mut g: *mut u16 = ptr::null_mut();
                let mut b: *mut u16 = ptr::null_mut();
                let (pr, pg, pb): (*mut *mut u16, *mut *mut u16, *mut *mut u16) =
                    (&mut r, &mut g, &mut b);
                if (lib.get_field_defaulted)(tif, 320, pr, pg, pb) == 0
                    || r.is_null()
                    || g.is_null()
                    || b.is_null()
                    || page.bits > 16
                {
                    return Err("no colour map".into());
                }
                // libtiff allocates each colour-map table with 2^BitsPerSample entries.
                let n = 1usize << page.bits;
                let copy = |p: *mut u16| std::slice::from_raw_parts(p, n).to_vec();
                let maps = [copy(r), copy(g), copy(b)];
                let exact8 = maps.iter().flatten().all(|v| v % 257 == 0);
                page.map = Some((maps, exact8));
            }
        }
        if !(1..=16).contains(&page.bits) || page.spp == 0 || page.width == 0 {
            return Err(format!("{}-bit samples", page.bits));
        }
        if page.separate && page.tile.is_none() {
            for _ in 1..page.spp {
                // SAFETY: as above; each handle is closed in Drop.
                let t = unsafe { (lib.open)(cpath.as_ptr(), c"rm".as_ptr()) };
                if t.is_null() {
                    return Err("libtiff cannot open the file again".into());
                }
                page.more.push(t);
                // SAFETY: t is open.
                if unsafe { (lib.set_directory)(t, dir) } == 0 {
                    return Err(format!("libtiff cannot read page {}", index + 1));
                }
            }
        }
        Ok(page)
    }

    /// Sample `i` of a row as libtiff returns it: bytes at 8 bits, native-endian
    /// 16-bit words at 16, an MSB-first bit string at any other depth.
    fn sample(row: &[u8], bits: u16, i: usize) -> Option<u16> {
        match bits {
            8 => row.get(i).map(|&b| u16::from(b)),
            16 => row
                .get(2 * i..2 * i + 2)
                .map(|b| u16::from_ne_bytes([b[0], b[1]])),
            _ => {
                let bits = usize::from(bits);
                let mut v = 0u16;
                for k in i * bits..(i + 1) * bits {
                    let byte = *row.get(k / 8)?;
                    v = (v << 1) | u16::from((byte >> (7 - k % 8)) & 1);
                }
                Some(v)
            }
        }
    }

    /// Put the `n` pixels of `row` (one plane's samples if `plane` is given) at
    /// `(x0, y)` of the output planes, through the documented mappings.
    fn put(
        &self,
        row: &[u8],
        plane: Option<u16>,
        x0: usize,
        y: usize,
        n: usize,
        out: &mut Band,
    ) -> Result<(), Error> {
        let spp = if plane.is_some() {
            1
        } else {
            usize::from(self.spp)
        };
        let w = self.width as usize;
        let short = || Error::new(ErrorKind::Verify, "libtiff returned a short row");
        let max = (1i32 << self.bits) - 1;
        if let Some(t) = &self.cmyk {
            // The row's inks, converted at once; alpha copied.
            let mut inks = Vec::with_capacity(n);
            for x in 0..n {
                let mut px = [0u16; 4];
                for (s, p) in px.iter_mut().enumerate() {
                    *p = Self::sample(row, self.bits, x * spp + s).ok_or_else(short)?;
                }
                inks.push(px);
                if spp >= 5 {
                    let a = Self::sample(row, self.bits, x * spp + 4).ok_or_else(short)?;
                    set(out, 3, y * w + x0 + x, i32::from(a));
                }
            }
            for (x, rgb) in t.convert(&inks).into_iter().enumerate() {
                for (c, v) in rgb.into_iter().enumerate() {
                    set(out, c, y * w + x0 + x, i32::from(v));
                }
            }
            return Ok(());
        }
        for x in 0..n {
            for s in 0..spp {
                let v = i32::from(Self::sample(row, self.bits, x * spp + s).ok_or_else(short)?);
                let at = y * w + x0 + x;
                match (&self.map, self.photometric) {
                    // Samples after the index (an alpha) are left out, as the reader does.
                    (Some(_), _) if s > 0 => {}
                    (Some((maps, exact8)), _) => {
                        for (c, m) in maps.iter().enumerate() {
                            let e = i32::from(m[v as usize]);
                            set(out, c, at, if *exact8 { e >> 8 } else { e });
                        }
                    }
                    (None, 0) => set(out, plane.map_or(s, usize::from), at, max - v),
                    (None, _) => set(out, plane.map_or(s, usize::from), at, v),
                }
            }
        }
        Ok(())
    }

    /// Rows `y0 .. y0 + rows` into `out`, one plane of `width * rows` per component.
    fn read(&mut self, y0: u32, rows: u32, out: &mut Band) -> Result<(), Error> {
        let comps = if self.map.is_some() {
            3
        } else if self.cmyk.is_some() {
            usize::from(self.spp) - 1
        } else {
            usize::from(self.spp)
        };
        let w = self.width as usize;
        let prec = match &self.map {
            Some((_, true)) => 8,
            Some((_, false)) => 16,
            None => self.bits,
        };
        out.y0 = y0;
        out.rows = rows;
        out.width = self.width;
        out.sample_bytes = if prec <= 8 { 1 } else { 2 };
        out.planes.resize_with(comps, Vec::new);
        for o in out.planes.iter_mut() {
            o.clear();
            o.resize(w * rows as usize * out.sample_bytes, 0);
        }
        let planes: Vec<Option<u16>> = if self.separate {
            (0..self.spp).map(Some).collect()
        } else {
            vec![None]
        };
        let fail = |what: String| {
            Error::new(
                ErrorKind::Verify,
                format!("libtiff could not decode {what}"),
            )
        };
        let mut buf = std::mem::take(&mut self.buf);
        let result = (|| {
            match self.tile {
                None => {
                    // SAFETY: tif is open.
                    let size = unsafe { (self.lib.scanline_size)(self.tif) };
                    buf.resize(usize::try_from(size).unwrap_or(0), 0);
                    // Planes outside, rows inside: libtiff decodes a strip sequentially.
                    for &plane in &planes {
                        for y in y0..y0 + rows {
                            let p = plane.unwrap_or(0);
                            let tif = match p {
                                0 => self.tif,
                                _ => self.more[usize::from(p) - 1],
                            };
                            // SAFETY: buf holds TIFFScanlineSize bytes.
                            let r = unsafe {
                                (self.lib.read_scanline)(tif, buf.as_mut_ptr().cast(), y, p)
                            };
                            if r < 0 {
                                return Err(fail(format!("row {y}")));
                            }
                            self.put(&buf, plane, 0, (y - y0) as usize, w, out)?;
                        }
                    }
                }
                Some((tw, th)) => {
                    // SAFETY: tif is open.
                    let size = unsafe { (self.lib.tile_size)(self.tif) };
                    buf.resize(usize::try_from(size).unwrap_or(0), 0);
                    let spp = |p: Option<u16>| if p.is_some() { 1 } else { u64::from(self.spp) };
                    for ty in (y0 / th)..=((y0 + rows - 1) / th) {
                        for tx in 0..self.width.div_ceil(tw) {
                            for &plane in &planes {
                                // SAFETY: buf holds TIFFTileSize bytes.
                                let r = unsafe {
                                    (self.lib.read_tile)(
                                        self.tif,
                                        buf.as_mut_ptr().cast(),
                                        tx * tw,
                                        ty * th,
                                        0,
                                        plane.unwrap_or(0),
                                    )
                                };
                                if r < 0 {
                                    return Err(fail(format!(
                                        "tile at ({}, {})",
                                        tx * tw,
                                        ty * th
                                    )));
                                }
                                let row_bytes = (u64::from(tw) * spp(plane) * u64::from(self.bits))
                                    .div_ceil(8)
                                    as usize;
                                let n = tw.min(self.width - tx * tw) as usize;
                                for y in (ty * th).max(y0)..((ty + 1) * th).min(y0 + rows) {
                                    let from = (y - ty * th) as usize * row_bytes;
                                    let row = buf
                                        .get(from..from + row_bytes)
                                        .ok_or_else(|| fail("a tile: short".into()))?;
                                    self.put(
                                        row,
                                        plane,
                                        (tx * tw) as usize,
                                        (y - y0) as usize,
                                        n,
                                        out,
                                    )?;
                                }
                            }
                        }
                    }
                }
            }
            Ok(())
        })();
        self.buf = buf;
        result
    }
}

/// lcms2's transform from a CMYK profile to sRGB, 8 or 16 bits as the source, a row at
/// a time (perceptual intent, as the converter's rule says).
enum CmykTransform {
    Eight(lcms2::Transform<[u8; 4], [u8; 3]>),
    Sixteen(lcms2::Transform<[u16; 4], [u16; 3]>),
}

impl CmykTransform {
    fn new(icc: &[u8], bits: u16) -> Result<CmykTransform, String> {
        use lcms2::{Intent, PixelFormat, Profile, Transform};
        let input = Profile::new_icc(icc).map_err(|e| format!("CMYK profile: {e}"))?;
        let srgb = Profile::new_srgb();
        let p = Intent::Perceptual;
        let fail = |e: lcms2::Error| format!("CMYK profile: {e}");
        Ok(match bits {
            8 => CmykTransform::Eight(
                Transform::new(&input, PixelFormat::CMYK_8, &srgb, PixelFormat::RGB_8, p)
                    .map_err(fail)?,
            ),
            16 => CmykTransform::Sixteen(
                Transform::new(&input, PixelFormat::CMYK_16, &srgb, PixelFormat::RGB_16, p)
                    .map_err(fail)?,
            ),
            b => return Err(format!("{b}-bit CMYK")),
        })
    }

    fn convert(&self, px: &[[u16; 4]]) -> Vec<[u16; 3]> {
        match self {
            CmykTransform::Eight(t) => {
                let src: Vec<[u8; 4]> = px.iter().map(|p| p.map(|v| v as u8)).collect();
                let mut o = vec![[0u8; 3]; px.len()];
                t.transform_pixels(&src, &mut o);
                o.into_iter().map(|p| p.map(u16::from)).collect()
            }
            CmykTransform::Sixteen(t) => {
                let mut o = vec![[0u16; 3]; px.len()];
                t.transform_pixels(px, &mut o);
                o
            }
        }
    }
}
