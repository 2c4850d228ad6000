//! FITS images by row ranges, through CFITSIO (the `fitsio` crate's `fitsio-src` build):
//! one small safe wrapper the rest of the workspace uses instead of `fitsio`'s own image
//! calls, which have two traps (each has a test against astropy here):
//!
//! - `FitsHdu::read_rows` panics on 3-D data: here a cube is read plane by plane
//!   ([`FitsReader::select_plane`]), rows counted inside the plane.
//! - `FitsHdu::read_region`'s first range is the columns (NAXIS1), and a column range
//!   past NAXIS1 silently wraps into the next row: here [`FitsReader::read_region`] names
//!   its ranges `x` and `y` and refuses any range outside the image.
//!
//! Values: [`FitsReader::read_rows_f32`] / [`FitsReader::read_rows_f64`] give the
//! **physical** values (BZERO and BSCALE applied by CFITSIO), and the [`RowSource`] band
//! holds them as astropy would: native-endian `f32` for BITPIX 8, 16 and -32, `f64` for
//! BITPIX 32, 64 and -64 (`f32` cannot hold every 32-bit integer).
//! [`FitsReader::read_rows_raw`] gives the stored values (no scaling) in the BITPIX type,
//! for copies that must be bit-exact.
//!
//! Files are opened and created with CFITSIO's "disk file" calls, so a path holding `[`
//! or `!` is a path, not CFITSIO's extended file-name syntax. Tile-compressed images are
//! read transparently, and written when [`FitsWriter::create`] is asked to.

use crate::{Band, Geometry, RowSource};
use fitsio::sys;
use membudget::{Error, ErrorKind};
use std::ffi::{CStr, CString};
use std::ops::Range;
use std::os::raw::{c_char, c_int, c_void};
use std::path::Path;

// CFITSIO's constants (macros in fitsio.h, absent from the generated bindings).
const READONLY: c_int = 0;
const IMAGE_HDU: c_int = 0;
const KEY_NO_EXIST: c_int = 202;
const END_OF_FILE: c_int = 107;
const BAD_HDU_NUM: c_int = 301;
const TBYTE: c_int = 11;
const TSHORT: c_int = 21;
const TINT: c_int = 31;
const TLONGLONG: c_int = 81;
const TFLOAT: c_int = 42;
const TDOUBLE: c_int = 82;

/// A tile-compression algorithm (FITS standard 4.0, section 10.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// RICE_1: integers only (floating-point values must be quantised first).
    Rice,
    /// GZIP_1: any data, lossless on raw floating-point values.
    Gzip,
    /// GZIP_2: GZIP of the bytes shuffled by significance (better on floating point).
    Gzip2,
}

impl Algorithm {
    fn code(self) -> c_int {
        match self {
            Algorithm::Rice => 11,
            Algorithm::Gzip => 21,
            Algorithm::Gzip2 => 22,
        }
    }

    /// The ZCMPTYPE name.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Rice => "RICE_1",
            Algorithm::Gzip => "GZIP_1",
            Algorithm::Gzip2 => "GZIP_2",
        }
    }
}

/// How [`FitsWriter::create`] tile-compresses an image: tiles of one row, so rows
/// stream out as they are written (CFITSIO compresses a tile once its row is complete,
/// holding one row), each tile read back on its own.
///
/// 64-bit integer images are refused (CFITSIO cannot compress them). Floating-point
/// images are compressed **losslessly** unless `quantize` is given:
/// CFITSIO's own default quantises them (q = 4, lossy), so it is set to 0 ("no
/// quantisation") here, which only the GZIP algorithms can store. With `quantize = q`
/// the values are quantised as fpack does (q > 0: steps of the tile's noise sigma / q;
/// q < 0: steps of |q|), with subtractive dithering, then compressed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Compression {
    /// The algorithm.
    pub algorithm: Algorithm,
    /// CFITSIO's quantisation level for floating-point images (never 0); integer images
    /// ignore it.
    pub quantize: Option<f32>,
}

impl Compression {
    /// Whether an image of `bitpix` comes back bit for bit.
    pub fn lossless(&self, bitpix: i32) -> bool {
        bitpix > 0 || self.quantize.is_none()
    }
}

/// Which HDU to read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum HduSel {
    /// The first HDU holding an image with at least two axes (astropy's numbering: the
    /// primary HDU is 0).
    #[default]
    FirstImage,
    /// HDU number N, counting from 0 as astropy does.
    Index(usize),
    /// The first HDU whose EXTNAME (or HDUNAME) is this, case-insensitive.
    Name(String),
    /// The HDU of this EXTNAME (or HDUNAME) and EXTVER (1 when absent, as the standard
    /// says), as astropy's `('SCI', 2)`.
    NameVersion(String, i64),
}

impl HduSel {
    /// `--hdu N|NAME|NAME,VER`: a number is an index, anything else a name, optionally
    /// with an EXTVER after a comma.
    pub fn parse(s: &str) -> Result<HduSel, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("--hdu: empty".into());
        }
        if let Some((name, ver)) = s.rsplit_once(',') {
            let ver = ver
                .trim()
                .parse::<i64>()
                .map_err(|_| format!("--hdu {s}: NAME,VER wants an integer EXTVER"))?;
            let name = name.trim();
            if name.is_empty() {
                return Err(format!("--hdu {s}: no name before the comma"));
            }
            return Ok(HduSel::NameVersion(name.to_string(), ver));
        }
        Ok(match s.parse::<usize>() {
            Ok(n) => HduSel::Index(n),
            Err(_) => HduSel::Name(s.to_string()),
        })
    }
}

/// An image HDU's geometry and scaling.
#[derive(Debug, Clone, PartialEq)]
pub struct FitsInfo {
    /// HDU index, counting from 0.
    pub hdu: usize,
    /// EXTNAME, if any.
    pub extname: Option<String>,
    /// NAXIS1.
    pub width: u32,
    /// NAXIS2.
    pub height: u32,
    /// Planes: the product of NAXIS3 and up (1 for a 2-D image).
    pub planes: u64,
    /// NAXIS.
    pub naxis: usize,
    /// BITPIX as stored (for a tile-compressed image, the image's BITPIX, not the table's).
    pub bitpix: i32,
    /// BZERO (0 when absent).
    pub bzero: f64,
    /// BSCALE (1 when absent).
    pub bscale: f64,
    /// The image is tile-compressed.
    pub compressed: bool,
}

impl FitsInfo {
    /// Whether the physical values are integers that fit 32 bits exactly in an `f32`
    /// (BITPIX 8 or 16, BSCALE 1, integral BZERO): exact histograms apply.
    pub fn small_integers(&self) -> bool {
        matches!(self.bitpix, 8 | 16) && self.bscale == 1.0 && self.bzero.fract() == 0.0
    }

    /// Bytes per physical sample in a band: 4 (`f32`) or 8 (`f64`).
    pub fn physical_bytes(&self) -> usize {
        if matches!(self.bitpix, 32 | 64 | -64) {
            8
        } else {
            4
        }
    }

    /// Bytes per stored (raw) sample.
    pub fn raw_bytes(&self) -> usize {
        (self.bitpix.unsigned_abs() / 8) as usize
    }
}

/// The CFITSIO error text of `status`, with the messages it stacked.
fn cfitsio_message(status: c_int) -> String {
    let mut buf = [0 as c_char; 81];
    // SAFETY: ffgerr writes at most 31 characters plus NUL into the buffer.
    unsafe { sys::ffgerr(status, buf.as_mut_ptr()) };
    // SAFETY: the buffer is NUL-terminated (zeroed, and ffgerr terminates it).
    let mut msg = unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    loop {
        let mut m = [0 as c_char; 81];
        // SAFETY: ffgmsg writes at most 80 characters plus NUL; 0 when the stack is empty.
        if unsafe { sys::ffgmsg(m.as_mut_ptr()) } == 0 {
            break;
        }
        // SAFETY: as above.
        let s = unsafe { CStr::from_ptr(m.as_ptr()) }.to_string_lossy();
        let s = s.trim();
        if !s.is_empty() && !msg.contains(s) {
            msg.push_str(": ");
            msg.push_str(s);
        }
    }
    msg
}

fn check(status: c_int, what: &str) -> Result<(), Error> {
    if status == 0 {
        return Ok(());
    }
    let kind = match status {
        104 => ErrorKind::NotFound, // FILE_NOT_OPENED
        105 | 106 | 112 => ErrorKind::Io,
        _ => ErrorKind::Corrupt,
    };
    Err(Error::new(
        kind,
        format!(
            "{what}: {} (CFITSIO status {status})",
            cfitsio_message(status)
        ),
    ))
}

fn cstring(s: &str) -> Result<CString, Error> {
    CString::new(s).map_err(|_| Error::new(ErrorKind::BadRecord, format!("{s:?}: NUL byte")))
}

fn path_cstring(p: &Path) -> Result<CString, Error> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::new(ErrorKind::BadRecord, "path holds a NUL byte"))
}

/// An open CFITSIO file, closed on drop.
#[derive(Debug)]
struct Handle(*mut sys::fitsfile);

impl Handle {
    fn ptr(&self) -> *mut sys::fitsfile {
        self.0
    }

    fn close(&mut self) -> Result<(), Error> {
        if self.0.is_null() {
            return Ok(());
        }
        let mut status = 0;
        // SAFETY: the pointer came from ffdkopn/ffdkinit and is closed once (nulled here).
        unsafe { sys::ffclos(self.0, &mut status) };
        self.0 = std::ptr::null_mut();
        check(status, "closing")
    }

    /// A keyword's value as a string (quotes removed), or None when absent.
    fn key_str(&self, key: &str) -> Result<Option<String>, Error> {
        let k = cstring(key)?;
        let mut v = [0 as c_char; 72];
        let mut status = 0;
        // SAFETY: the value buffer holds FLEN_VALUE (71) bytes; no comment is asked for.
        unsafe {
            sys::ffgkys(
                self.ptr(),
                k.as_ptr(),
                v.as_mut_ptr(),
                std::ptr::null_mut(),
                &mut status,
            )
        };
        if status == KEY_NO_EXIST {
            // SAFETY: clears CFITSIO's message stack of the expected miss.
            unsafe { sys::ffcmsg() };
            return Ok(None);
        }
        check(status, key)?;
        // SAFETY: NUL-terminated by CFITSIO.
        let s = unsafe { CStr::from_ptr(v.as_ptr()) }.to_string_lossy();
        Ok(Some(s.trim().to_string()))
    }

    fn key_f64(&self, key: &str) -> Result<Option<f64>, Error> {
        let k = cstring(key)?;
        let mut v = 0f64;
        let mut status = 0;
        // SAFETY: plain out-parameter; no comment asked for.
        unsafe {
            sys::ffgkyd(
                self.ptr(),
                k.as_ptr(),
                &mut v,
                std::ptr::null_mut(),
                &mut status,
            )
        };
        if status == KEY_NO_EXIST {
            // SAFETY: clears the expected miss from the message stack.
            unsafe { sys::ffcmsg() };
            return Ok(None);
        }
        check(status, key)?;
        Ok(Some(v))
    }
}

// SAFETY: CFITSIO is built reentrant here (fitsio-sys's `fitsio-src` build configures it
// with --enable-reentrant), so separate files may be used from separate threads. A Handle
// is owned by one reader or writer, which moves between threads but is never shared
// (no Sync).
unsafe impl Send for Handle {}

impl Drop for Handle {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// A FITS image HDU open for reading by rows.
#[derive(Debug)]
pub struct FitsReader {
    h: Handle,
    info: FitsInfo,
    plane: u64,
    /// Scaling switched off (raw reads) rather than on.
    raw: bool,
}

impl FitsReader {
    /// Open `path` at the HDU `sel` picks. A table, an empty HDU or an image with one
    /// axis is refused with a clear error.
    pub fn open(path: &Path, sel: &HduSel) -> Result<FitsReader, Error> {
        let name = path_cstring(path)?;
        let mut fptr: *mut sys::fitsfile = std::ptr::null_mut();
        let mut status = 0;
        // SAFETY: valid NUL-terminated name; fptr receives the handle.
        unsafe { sys::ffdkopn(&mut fptr, name.as_ptr(), READONLY, &mut status) };
        let h = Handle(fptr);
        if status != 0 {
            let kind = if path.exists() {
                ErrorKind::Corrupt
            } else {
                ErrorKind::NotFound
            };
            return Err(Error::new(
                kind,
                format!("not a readable FITS file: {}", cfitsio_message(status)),
            ));
        }
        let mut n: c_int = 0;
        // SAFETY: open handle, out-parameter.
        unsafe { sys::ffthdu(h.ptr(), &mut n, &mut status) };
        check(status, "counting HDUs")?;
        let n = n.max(0) as usize;
        let mut r = FitsReader {
            h,
            info: FitsInfo {
                hdu: 0,
                extname: None,
                width: 0,
                height: 0,
                planes: 0,
                naxis: 0,
                bitpix: 0,
                bzero: 0.0,
                bscale: 1.0,
                compressed: false,
            },
            plane: 0,
            raw: false,
        };
        match sel {
            HduSel::Index(i) => {
                if *i >= n {
                    return Err(Error::new(
                        ErrorKind::BadRecord,
                        format!("--hdu {i}: the file has {n} HDU(s), numbered from 0"),
                    ));
                }
                r.describe(*i)?;
                r.require_image()?;
            }
            HduSel::Name(want) | HduSel::NameVersion(want, _) => {
                let version = match sel {
                    HduSel::NameVersion(_, v) => Some(*v),
                    _ => None,
                };
                let mut found = false;
                for i in 0..n {
                    r.describe(i)?;
                    let hduname = r.h.key_str("HDUNAME")?;
                    let names = [r.info.extname.clone(), hduname];
                    if !names.iter().flatten().any(|s| s.eq_ignore_ascii_case(want)) {
                        continue;
                    }
                    let extver = r.h.key_f64("EXTVER")?.unwrap_or(1.0);
                    if version.is_none_or(|v| extver == v as f64) {
                        found = true;
                        break;
                    }
                }
                if !found {
                    return Err(Error::new(
                        ErrorKind::BadRecord,
                        match version {
                            Some(v) => format!("--hdu {want},{v}: no HDU of that name and EXTVER"),
                            None => format!("--hdu {want}: no HDU of that name"),
                        },
                    ));
                }
                r.require_image()?;
            }
            HduSel::FirstImage => {
                let mut found = false;
                for i in 0..n {
                    if r.describe(i)? && r.info.naxis >= 2 {
                        found = true;
                        break;
                    }
                }
                if !found {
                    return Err(Error::unsupported(format!(
                        "no image HDU with two or more axes among {n} HDU(s) (a table only?)"
                    )));
                }
            }
        }
        Ok(r)
    }

    /// Move to HDU `i` and read its geometry; false when it is not an image.
    fn describe(&mut self, i: usize) -> Result<bool, Error> {
        let mut status = 0;
        let mut kind: c_int = 0;
        // SAFETY: open handle; CFITSIO numbers HDUs from 1.
        unsafe { sys::ffmahd(self.h.ptr(), i as c_int + 1, &mut kind, &mut status) };
        if status == END_OF_FILE || status == BAD_HDU_NUM {
            return Err(Error::corrupt(format!("HDU {i} is missing or truncated")));
        }
        check(status, &format!("HDU {i}"))?;
        self.info.hdu = i;
        self.info.extname = self.h.key_str("EXTNAME")?;
        // SAFETY: open handle at an HDU.
        let compressed = unsafe { sys::fits_is_compressed_image(self.h.ptr(), &mut status) } != 0;
        check(status, "compression")?;
        self.info.compressed = compressed;
        if kind != IMAGE_HDU && !compressed {
            self.info.naxis = 0;
            return Ok(false);
        }
        let mut bitpix: c_int = 0;
        let mut naxis: c_int = 0;
        let mut naxes = [0 as sys::LONGLONG; 9];
        // SAFETY: naxes holds 9 entries, maxaxis says so.
        unsafe {
            sys::ffgiprll(
                self.h.ptr(),
                9,
                &mut bitpix,
                &mut naxis,
                naxes.as_mut_ptr(),
                &mut status,
            )
        };
        check(status, "image parameters")?;
        if naxis > 9 {
            return Err(Error::unsupported(format!(
                "NAXIS = {naxis}: at most 9 axes"
            )));
        }
        let dims = &naxes[..naxis.max(0) as usize];
        if dims.iter().any(|&d| d < 0) {
            return Err(Error::corrupt("negative NAXISn"));
        }
        if dims.len() >= 2 && (dims[0] > u32::MAX as i64 || dims[1] > u32::MAX as i64) {
            return Err(Error::hostile("NAXIS1 or NAXIS2 above 2^32"));
        }
        self.info.naxis = dims.len();
        self.info.bitpix = bitpix;
        self.info.width = dims.first().copied().unwrap_or(0) as u32;
        self.info.height = dims.get(1).copied().unwrap_or(0) as u32;
        self.info.planes = dims
            .iter()
            .skip(2)
            .try_fold(1u64, |a, &d| a.checked_mul(d as u64))
            .ok_or_else(|| Error::hostile("plane count overflows"))?;
        // For a compressed image the image's scaling keywords are ZSCALE/ZZERO-free:
        // CFITSIO moves BZERO/BSCALE into the image header it presents.
        self.info.bzero = self.h.key_f64("BZERO")?.unwrap_or(0.0);
        self.info.bscale = self.h.key_f64("BSCALE")?.unwrap_or(1.0);
        self.plane = 0;
        Ok(true)
    }

    fn require_image(&self) -> Result<(), Error> {
        let i = self.info.hdu;
        if self.info.naxis == 0 && self.info.bitpix == 0 {
            return Err(Error::unsupported(format!(
                "HDU {i} is a table, not an image"
            )));
        }
        if self.info.naxis < 2 || self.info.width == 0 || self.info.height == 0 {
            return Err(Error::unsupported(format!(
                "HDU {i} holds no 2-D image (NAXIS = {})",
                self.info.naxis
            )));
        }
        Ok(())
    }

    /// Geometry and scaling of the open HDU.
    pub fn info(&self) -> &FitsInfo {
        &self.info
    }

    /// Read plane `p` (0-based, NAXIS3 and up flattened) from now on.
    pub fn select_plane(&mut self, p: u64) -> Result<(), Error> {
        if p >= self.info.planes {
            return Err(Error::new(
                ErrorKind::BadRecord,
                format!("plane {p}: the image has {} plane(s)", self.info.planes),
            ));
        }
        self.plane = p;
        Ok(())
    }

    fn set_raw(&mut self, raw: bool) -> Result<(), Error> {
        if self.raw == raw {
            return Ok(());
        }
        let (scale, zero) = if raw {
            (1.0, 0.0)
        } else {
            (self.info.bscale, self.info.bzero)
        };
        let mut status = 0;
        // SAFETY: open handle at an image HDU.
        unsafe { sys::ffpscl(self.h.ptr(), scale, zero, &mut status) };
        check(status, "scaling")?;
        self.raw = raw;
        Ok(())
    }

    fn check_rows(&self, y0: u32, rows: u32, len: usize) -> Result<(), Error> {
        let end = u64::from(y0) + u64::from(rows);
        if end > u64::from(self.info.height) {
            return Err(Error::new(
                ErrorKind::Internal,
                format!(
                    "rows {y0}..{end} past the image's {} rows",
                    self.info.height
                ),
            ));
        }
        if len != self.info.width as usize * rows as usize {
            return Err(Error::new(
                ErrorKind::Internal,
                format!(
                    "buffer of {len} samples for {rows} rows of {}",
                    self.info.width
                ),
            ));
        }
        Ok(())
    }

    /// Read `n` consecutive pixels from (x, y) of the current plane as `datatype`.
    fn read_pix(
        &mut self,
        datatype: c_int,
        x: u32,
        y: u32,
        n: usize,
        out: *mut c_void,
    ) -> Result<(), Error> {
        if n == 0 {
            return Ok(());
        }
        let mut first = [1 as sys::LONGLONG; 9];
        first[0] = i64::from(x) + 1;
        first[1] = i64::from(y) + 1;
        // The plane index spread over NAXIS3 and up.
        let mut p = self.plane;
        let mut naxes = [0 as sys::LONGLONG; 9];
        let (mut bp, mut nx, mut status) = (0, 0, 0);
        // SAFETY: naxes holds 9 entries.
        unsafe {
            sys::ffgiprll(
                self.h.ptr(),
                9,
                &mut bp,
                &mut nx,
                naxes.as_mut_ptr(),
                &mut status,
            )
        };
        check(status, "image parameters")?;
        for k in 2..self.info.naxis {
            let d = naxes[k].max(1) as u64;
            first[k] = (p % d) as i64 + 1;
            p /= d;
        }
        let mut anynul = 0;
        // SAFETY: `out` points to at least n elements of `datatype` (checked by callers);
        // first holds naxis entries; no null value substitution.
        unsafe {
            sys::ffgpxvll(
                self.h.ptr(),
                datatype,
                first.as_mut_ptr(),
                n as sys::LONGLONG,
                std::ptr::null_mut(),
                out,
                &mut anynul,
                &mut status,
            )
        };
        check(status, &format!("reading rows from {y}"))
    }

    /// Rows `y0 .. y0 + rows` of the current plane as physical `f32` values.
    pub fn read_rows_f32(&mut self, y0: u32, rows: u32, out: &mut [f32]) -> Result<(), Error> {
        self.check_rows(y0, rows, out.len())?;
        self.set_raw(false)?;
        self.read_pix(TFLOAT, 0, y0, out.len(), out.as_mut_ptr().cast())
    }

    /// Rows `y0 .. y0 + rows` of the current plane as physical `f64` values.
    pub fn read_rows_f64(&mut self, y0: u32, rows: u32, out: &mut [f64]) -> Result<(), Error> {
        self.check_rows(y0, rows, out.len())?;
        self.set_raw(false)?;
        self.read_pix(TDOUBLE, 0, y0, out.len(), out.as_mut_ptr().cast())
    }

    /// Rows `y0 .. y0 + rows` of the current plane as stored (no BZERO/BSCALE), in the
    /// BITPIX type (u8, i16, i32, i64, f32, f64), native-endian bytes.
    pub fn read_rows_raw(&mut self, y0: u32, rows: u32, out: &mut [u8]) -> Result<(), Error> {
        let sb = self.info.raw_bytes();
        if !out.len().is_multiple_of(sb) {
            return Err(Error::new(
                ErrorKind::Internal,
                "raw buffer not a whole number of samples",
            ));
        }
        self.check_rows(y0, rows, out.len() / sb)?;
        self.set_raw(true)?;
        let t = datatype(self.info.bitpix)?;
        // The buffer is u8 but CFITSIO writes wider types: read into an aligned buffer.
        match sb {
            1 => self.read_pix(t, 0, y0, out.len(), out.as_mut_ptr().cast()),
            _ => {
                let mut tmp = vec![0u64; out.len().div_ceil(8)];
                self.read_pix(t, 0, y0, out.len() / sb, tmp.as_mut_ptr().cast())?;
                for (i, w) in tmp.iter().enumerate() {
                    let b = w.to_ne_bytes();
                    let a = i * 8;
                    let e = (a + 8).min(out.len());
                    out[a..e].copy_from_slice(&b[..e - a]);
                }
                Ok(())
            }
        }
    }

    /// The physical values of columns `x` of rows `y` of the current plane, row after
    /// row, as `f64`. A range outside the image is an error (never a wrap into the next
    /// row).
    pub fn read_region(&mut self, x: Range<u32>, y: Range<u32>) -> Result<Vec<f64>, Error> {
        if x.start > x.end || y.start > y.end || x.end > self.info.width || y.end > self.info.height
        {
            return Err(Error::new(
                ErrorKind::BadRecord,
                format!(
                    "region x {x:?}, y {y:?} outside the {}x{} image",
                    self.info.width, self.info.height
                ),
            ));
        }
        self.set_raw(false)?;
        let w = (x.end - x.start) as usize;
        let mut out = vec![0f64; w * (y.end - y.start) as usize];
        for (i, row) in y.clone().enumerate() {
            let dst = &mut out[i * w..(i + 1) * w];
            self.read_pix(TDOUBLE, x.start, row, w, dst.as_mut_ptr().cast())?;
        }
        Ok(out)
    }

    /// A keyword of the open HDU as a string (quotes removed).
    pub fn key_str(&self, key: &str) -> Result<Option<String>, Error> {
        self.h.key_str(key)
    }

    /// A numeric keyword of the open HDU.
    pub fn key_f64(&self, key: &str) -> Result<Option<f64>, Error> {
        self.h.key_f64(key)
    }

    /// Every header card of the open HDU (80 characters each, END excluded). For a
    /// tile-compressed image, the image header CFITSIO presents.
    pub fn header_cards(&self) -> Result<Vec<String>, Error> {
        let (mut n, mut more, mut status) = (0, 0, 0);
        // SAFETY: open handle, out-parameters.
        unsafe { sys::ffghsp(self.h.ptr(), &mut n, &mut more, &mut status) };
        check(status, "header size")?;
        let mut cards = Vec::with_capacity(n.max(0) as usize);
        for i in 1..=n {
            let mut card = [0 as c_char; 81];
            // SAFETY: FLEN_CARD is 81 bytes.
            unsafe { sys::ffgrec(self.h.ptr(), i, card.as_mut_ptr(), &mut status) };
            check(status, "header card")?;
            // SAFETY: NUL-terminated by CFITSIO.
            cards.push(
                unsafe { CStr::from_ptr(card.as_ptr()) }
                    .to_string_lossy()
                    .into_owned(),
            );
        }
        Ok(cards)
    }
}

fn datatype(bitpix: i32) -> Result<c_int, Error> {
    Ok(match bitpix {
        8 => TBYTE,
        16 => TSHORT,
        32 => TINT,
        64 => TLONGLONG,
        -32 => TFLOAT,
        -64 => TDOUBLE,
        b => return Err(Error::corrupt(format!("BITPIX = {b}"))),
    })
}

impl RowSource for FitsReader {
    fn geometry(&self) -> Geometry {
        Geometry {
            width: self.info.width,
            height: self.info.height,
            comps: 1,
            sample_bytes: self.info.physical_bytes(),
        }
    }

    /// Physical values of the current plane: `f32` or `f64` (see [`FitsInfo::physical_bytes`]).
    fn read_band(&mut self, y0: u32, rows: u32, band: &mut Band) -> Result<(), Error> {
        let sb = self.info.physical_bytes();
        band.shape(y0, rows, self.info.width, 1, sb);
        let n = self.info.width as usize * rows as usize;
        self.check_rows(y0, rows, n)?;
        self.set_raw(false)?;
        let t = if sb == 8 { TDOUBLE } else { TFLOAT };
        // Read into an aligned buffer, then copy the bytes into the band's plane.
        let mut tmp = vec![0u64; (n * sb).div_ceil(8)];
        self.read_pix(t, 0, y0, n, tmp.as_mut_ptr().cast())?;
        let plane = &mut band.planes[0];
        for (i, w) in tmp.iter().enumerate() {
            let b = w.to_ne_bytes();
            let a = i * 8;
            let e = (a + 8).min(plane.len());
            plane[a..e].copy_from_slice(&b[..e - a]);
        }
        Ok(())
    }
}

/// Header cards a copy must not carry: structure, scaling and checksums the new HDU sets
/// itself, and the tile-compression bookkeeping.
pub fn structural_key(card: &str) -> bool {
    let key = card.get(..8).unwrap_or(card).trim_end();
    matches!(
        key,
        "SIMPLE"
            | "XTENSION"
            | "BITPIX"
            | "EXTEND"
            | "PCOUNT"
            | "GCOUNT"
            | "BZERO"
            | "BSCALE"
            | "BLANK"
            | "CHECKSUM"
            | "DATASUM"
            | "END"
            | "TFIELDS"
            | "THEAP"
            | "EXTNAME"
            | "EXTVER"
            | "INHERIT"
    ) || key.starts_with("NAXIS")
        || key.starts_with('Z')
            && matches!(
                key,
                "ZIMAGE"
                    | "ZBITPIX"
                    | "ZCMPTYPE"
                    | "ZQUANTIZ"
                    | "ZDITHER0"
                    | "ZSIMPLE"
                    | "ZEXTEND"
                    | "ZBLOCKED"
                    | "ZTENSION"
                    | "ZPCOUNT"
                    | "ZGCOUNT"
                    | "ZHECKSUM"
                    | "ZDATASUM"
            )
        || key.starts_with("ZNAXIS")
        || key.starts_with("ZTILE")
        || key.starts_with("ZNAME")
        || key.starts_with("ZVAL")
        || key.starts_with("TTYPE")
        || key.starts_with("TFORM")
}

/// A new FITS file with one image in its primary HDU, written row range by row range.
/// Create it on a temporary path and rename it into place once [`FitsWriter::finish`]
/// returned (see `membudget::cli::AtomicFile`).
#[derive(Debug)]
pub struct FitsWriter {
    h: Handle,
    width: u32,
    height: u32,
    planes: u64,
    bitpix: i32,
}

impl FitsWriter {
    /// Create `path` (replacing any file there) holding a `width` x `height` x `planes`
    /// image of `bitpix`, tile-compressed as `compression` says if given (then in an
    /// extension after an empty primary HDU, as the standard wants). RICE_1 on a
    /// floating-point image without a quantisation level is refused: it cannot be
    /// lossless.
    pub fn create(
        path: &Path,
        width: u32,
        height: u32,
        planes: u64,
        bitpix: i32,
        compression: Option<Compression>,
    ) -> Result<FitsWriter, Error> {
        datatype(bitpix)?;
        if let Some(c) = compression {
            if bitpix == 64 {
                return Err(Error::unsupported(
                    "CFITSIO cannot tile-compress 64-bit integer images: write them uncompressed",
                ));
            }
            if bitpix < 0 && c.quantize.is_none() && c.algorithm == Algorithm::Rice {
                return Err(Error::unsupported(
                    "RICE_1 stores floating-point pixels only quantised (lossy): compress them \
                     with GZIP_1/GZIP_2 (lossless) or give a quantisation level",
                ));
            }
            if c.quantize == Some(0.0) || c.quantize.is_some_and(|q| !q.is_finite()) {
                return Err(Error::unsupported(
                    "quantisation level 0 or not finite: leave it out for lossless compression",
                ));
            }
        }
        // CFITSIO refuses to create over an existing file (AtomicFile's empty temporary).
        let _ = std::fs::remove_file(path);
        let name = path_cstring(path)?;
        let mut fptr: *mut sys::fitsfile = std::ptr::null_mut();
        let mut status = 0;
        // SAFETY: valid NUL-terminated name; fptr receives the handle.
        unsafe { sys::ffdkinit(&mut fptr, name.as_ptr(), &mut status) };
        let h = Handle(fptr);
        check(status, "creating the FITS file")?;
        let mut naxes: Vec<sys::LONGLONG> = vec![i64::from(width), i64::from(height)];
        if planes > 1 {
            naxes.push(planes as i64);
        }
        if let Some(c) = compression {
            let mut tile: Vec<std::os::raw::c_long> = vec![1; naxes.len()];
            tile[0] = width.max(1) as std::os::raw::c_long;
            // SAFETY: open handle; these settings apply to the next image created; tile
            // holds one entry per axis.
            unsafe {
                sys::fits_set_compression_type(h.ptr(), c.algorithm.code(), &mut status);
                sys::fits_set_tile_dim(
                    h.ptr(),
                    tile.len() as c_int,
                    tile.as_mut_ptr(),
                    &mut status,
                );
                if bitpix < 0 {
                    // 0 is CFITSIO's "no quantisation" (its default, 4, is lossy).
                    sys::fits_set_quantize_level(h.ptr(), c.quantize.unwrap_or(0.0), &mut status);
                }
            }
            check(status, "compression")?;
        }
        // SAFETY: naxes holds naxis entries.
        unsafe {
            sys::ffcrimll(
                h.ptr(),
                bitpix,
                naxes.len() as c_int,
                naxes.as_mut_ptr(),
                &mut status,
            )
        };
        check(status, "creating the image")?;
        Ok(FitsWriter {
            h,
            width,
            height,
            planes,
            bitpix,
        })
    }

    /// Copy `cards` (from [`FitsReader::header_cards`]) except the structural ones.
    pub fn copy_cards(&mut self, cards: &[String]) -> Result<(), Error> {
        for c in cards.iter().filter(|c| !structural_key(c)) {
            let cc = cstring(c)?;
            let mut status = 0;
            // SAFETY: open handle; a card of at most 80 characters.
            unsafe { sys::ffprec(self.h.ptr(), cc.as_ptr(), &mut status) };
            check(status, "copying a header card")?;
        }
        Ok(())
    }

    /// Set (add or update) a string keyword.
    pub fn set_str(&mut self, key: &str, value: &str, comment: &str) -> Result<(), Error> {
        let (k, v, c) = (cstring(key)?, cstring(value)?, cstring(comment)?);
        let mut status = 0;
        // SAFETY: NUL-terminated strings; open handle.
        unsafe {
            sys::ffukys(
                self.h.ptr(),
                k.as_ptr(),
                v.as_ptr(),
                c.as_ptr(),
                &mut status,
            )
        };
        check(status, key)
    }

    /// Set (add or update) a floating-point keyword (full precision).
    pub fn set_f64(&mut self, key: &str, value: f64, comment: &str) -> Result<(), Error> {
        let (k, c) = (cstring(key)?, cstring(comment)?);
        let mut status = 0;
        // SAFETY: NUL-terminated strings; open handle. Negative decim: %G with 15 digits.
        unsafe {
            sys::ffukyd(
                self.h.ptr(),
                k.as_ptr(),
                value,
                -15,
                c.as_ptr(),
                &mut status,
            )
        };
        check(status, key)
    }

    /// Set (add or update) an integer keyword.
    pub fn set_i64(&mut self, key: &str, value: i64, comment: &str) -> Result<(), Error> {
        let (k, c) = (cstring(key)?, cstring(comment)?);
        let mut status = 0;
        // SAFETY: NUL-terminated strings; open handle.
        unsafe { sys::ffukyj(self.h.ptr(), k.as_ptr(), value, c.as_ptr(), &mut status) };
        check(status, key)
    }

    /// Delete a keyword if present.
    pub fn delete_key(&mut self, key: &str) -> Result<(), Error> {
        let k = cstring(key)?;
        let mut status = 0;
        // SAFETY: NUL-terminated name; open handle.
        unsafe { sys::ffdkey(self.h.ptr(), k.as_ptr(), &mut status) };
        if status == KEY_NO_EXIST {
            // SAFETY: clears the expected miss.
            unsafe { sys::ffcmsg() };
            return Ok(());
        }
        check(status, key)
    }

    /// Add a HISTORY card (long text is continued over several cards by CFITSIO).
    pub fn history(&mut self, text: &str) -> Result<(), Error> {
        let t = cstring(text)?;
        let mut status = 0;
        // SAFETY: NUL-terminated text; open handle.
        unsafe { sys::ffphis(self.h.ptr(), t.as_ptr(), &mut status) };
        check(status, "HISTORY")
    }

    /// Write BZERO/BSCALE cards and store values as given (no scaling on write): with
    /// [`FitsWriter::write_rows_raw`], a bit-exact copy of the stored values.
    pub fn raw_scaling(&mut self, bzero: f64, bscale: f64) -> Result<(), Error> {
        if bzero != 0.0 || bscale != 1.0 {
            // Integral values are written as integers, as astropy does for BZERO=32768.
            if bzero.fract() == 0.0 && bzero.abs() < 9e15 {
                self.set_i64("BZERO", bzero as i64, "physical = BZERO + BSCALE * stored")?;
            } else {
                self.set_f64("BZERO", bzero, "physical = BZERO + BSCALE * stored")?;
            }
            if bscale.fract() == 0.0 && bscale.abs() < 9e15 {
                self.set_i64("BSCALE", bscale as i64, "")?;
            } else {
                self.set_f64("BSCALE", bscale, "")?;
            }
        }
        let mut status = 0;
        // SAFETY: open handle: re-read the header, then turn scaling off for writes.
        unsafe {
            sys::ffrdef(self.h.ptr(), &mut status);
            sys::ffpscl(self.h.ptr(), 1.0, 0.0, &mut status);
        }
        check(status, "scaling")
    }

    fn write_pix(
        &mut self,
        datatype: c_int,
        plane: u64,
        y0: u32,
        n: usize,
        data: *mut c_void,
    ) -> Result<(), Error> {
        if plane >= self.planes.max(1) || !n.is_multiple_of(self.width.max(1) as usize) {
            return Err(Error::new(ErrorKind::Internal, "write outside the image"));
        }
        let rows = n / self.width.max(1) as usize;
        if u64::from(y0) + rows as u64 > u64::from(self.height) {
            return Err(Error::new(ErrorKind::Internal, "rows past the image"));
        }
        if n == 0 {
            return Ok(());
        }
        let mut first: Vec<sys::LONGLONG> = vec![1, i64::from(y0) + 1];
        if self.planes > 1 {
            first.push(plane as i64 + 1);
        }
        let mut status = 0;
        // SAFETY: data points to n elements of datatype; first holds naxis entries.
        unsafe {
            sys::ffppxll(
                self.h.ptr(),
                datatype,
                first.as_mut_ptr(),
                n as sys::LONGLONG,
                data,
                &mut status,
            )
        };
        check(status, &format!("writing rows from {y0}"))
    }

    /// Write whole rows from `y0` of `plane` as `f32` values (converted to BITPIX).
    pub fn write_rows_f32(&mut self, plane: u64, y0: u32, data: &[f32]) -> Result<(), Error> {
        self.write_pix(TFLOAT, plane, y0, data.len(), data.as_ptr() as *mut c_void)
    }

    /// Write whole rows from `y0` of `plane` as `f64` values (converted to BITPIX).
    pub fn write_rows_f64(&mut self, plane: u64, y0: u32, data: &[f64]) -> Result<(), Error> {
        self.write_pix(TDOUBLE, plane, y0, data.len(), data.as_ptr() as *mut c_void)
    }

    /// Write whole rows from `y0` of `plane` as stored values of this file's BITPIX
    /// (native-endian bytes, as [`FitsReader::read_rows_raw`] gives them).
    pub fn write_rows_raw(&mut self, plane: u64, y0: u32, data: &[u8]) -> Result<(), Error> {
        let sb = (self.bitpix.unsigned_abs() / 8) as usize;
        let t = datatype(self.bitpix)?;
        // CFITSIO reads wider types through the pointer: hand it an aligned copy.
        let mut tmp = vec![0u64; data.len().div_ceil(8)];
        for (i, w) in tmp.iter_mut().enumerate() {
            let mut b = [0u8; 8];
            let a = i * 8;
            let e = (a + 8).min(data.len());
            b[..e - a].copy_from_slice(&data[a..e]);
            *w = u64::from_ne_bytes(b);
        }
        self.write_pix(t, plane, y0, data.len() / sb, tmp.as_mut_ptr().cast())
    }

    /// Write the checksums and close; an error here means the file is not complete.
    pub fn finish(mut self) -> Result<(), Error> {
        let mut status = 0;
        // SAFETY: open handle.
        unsafe { sys::ffpcks(self.h.ptr(), &mut status) };
        check(status, "checksum")?;
        self.h.close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hdu_selection_parses() {
        assert_eq!(HduSel::parse("2"), Ok(HduSel::Index(2)));
        assert_eq!(HduSel::parse("SCI"), Ok(HduSel::Name("SCI".into())));
        assert_eq!(
            HduSel::parse("SCI, 2"),
            Ok(HduSel::NameVersion("SCI".into(), 2))
        );
        assert!(HduSel::parse("SCI,x").is_err());
        assert!(HduSel::parse(",2").is_err());
        assert!(HduSel::parse(" ").is_err());
    }

    #[test]
    fn structural_cards_are_not_copied() {
        assert!(structural_key("NAXIS1  =                  100"));
        assert!(structural_key("BZERO   =                32768"));
        assert!(structural_key("ZTILE1  =                  100"));
        assert!(!structural_key("OBJECT  = 'M31     '"));
        assert!(!structural_key("HISTORY made"));
        assert!(!structural_key("ZENITH  = 1.0"));
    }

    #[test]
    fn missing_file_is_not_found() {
        let e =
            FitsReader::open(Path::new("/nonexistent/x.fits"), &HduSel::FirstImage).unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound);
    }
}
