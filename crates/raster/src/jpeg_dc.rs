//! A JPEG read at 1/8 scale from its DC terms alone: [`DcRows`] serves one pixel per
//! 8x8 block, as libjpeg's 1/8 decode does (its 1x1 inverse DCT is the DC term
//! dequantised, `(dc * q + 4) >> 3` plus 128), colour-converted by libjpeg's fixed-point
//! YCbCr to RGB, while skipping every AC coefficient without computing it.
//!
//! Why by hand: at 1/8 scale a JPEG thumbnail's time is the entropy decoder's (76% of it
//! in libjpeg-turbo's `decode_mcu` on a 100-megapixel photo). libjpeg-turbo decodes each
//! AC symbol through an 8-bit lookahead, then reads its value bits in a second step and
//! refills its bit buffer byte by byte; no crate decodes only the DC terms (zune-jpeg and
//! jpeg-decoder decode every coefficient). Skipping needs only each symbol's whole length
//! (code plus value bits) and the coefficients it covers, so one lookup of a table indexed
//! by the next `LUT_BITS` (11) bits skips one to several symbols, and the bit buffer is
//! refilled eight bytes at a time when they hold no `0xFF`.
//!
//! A progressive JPEG is worse for libjpeg: it decodes every scan into every coefficient
//! of the image (128 bytes a block) before the first row. Here its DC scans (first and
//! refinement, interleaved or not) fill 2 bytes a block and the AC scans are stepped over
//! to their next marker, never decoded.
//!
//! Scope: sequential (baseline or extended) with one scan holding every component, or
//! progressive, Huffman-coded, 8-bit, gray or YCbCr, with or without restart markers.
//! [`DcRows::open`] answers `None` for anything else (arithmetic coding, 12-bit,
//! lossless, CMYK, RGB-coded, a sequential JPEG of several scans), which the caller
//! decodes with libjpeg instead.
//!
//! Subsampled chroma is taken from the block covering each pixel (libjpeg's 1/8 decode
//! of 4:2:0 runs a 2x2 inverse DCT on chroma instead, whose four pixels average to the
//! same DC value): blocky at 1/8 itself, so [`crate::thumbnail::open_jpeg`] uses this
//! reader for subsampled JPEGs only when a reduction by 2 or more follows, after which the
//! two agree to about a level.
//!
//! Damaged data is an error, as in [`crate::jpeg`]'s strict libjpeg: a code no table
//! holds, a bogus table, a missing or misnumbered restart marker, bytes left before a
//! marker, data ending (a marker or the end of the file) before the last block. Where
//! libjpeg reads on, so does this: fill bytes, restart markers between scans, a
//! progressive component without scans (grey), DC values beyond the sample range (its
//! range-limit table wraps them; see `idct_1x1`). Damage inside a progressive JPEG's
//! AC scans goes unnoticed: they are not decoded, and the 1/8 image does not depend on
//! them.
//!
//! Memory: one MCU row of DC samples (`width / 8` a component, 4 rows at most), its
//! converted rows, and a 128 KiB read buffer; a progressive JPEG adds its DC terms, 2
//! bytes a block of each component (1/32 of a byte a pixel).

use crate::{Band, Geometry, RowSource};
use membudget::{Error, ErrorKind};
use std::io::Read;

/// Bits indexing the AC skip table and the DC table.
const LUT_BITS: u32 = 11;
/// Read buffer.
const BUF_BYTES: usize = 128 << 10;
/// Most bytes of ICC profile chunks read (a hostile file could repeat APP2 markers).
const MAX_ICC_BYTES: usize = 16 << 20;

fn corrupt(msg: impl std::fmt::Display) -> Error {
    Error::corrupt(format!("JPEG: {msg}"))
}

/// A Huffman table as JPEG defines it (Annex C): code lengths' counts and symbols.
#[derive(Clone, Debug)]
struct Huff {
    /// Largest code of each length (1..=16), -1 when none.
    maxcode: [i32; 17],
    /// Index in `vals` of the first code of each length, less that code.
    delta: [i32; 17],
    vals: Vec<u8>,
}

impl Huff {
    fn new(counts: &[u8; 16], vals: &[u8]) -> Result<Self, Error> {
        let mut maxcode = [-1i32; 17];
        let mut delta = [0i32; 17];
        let (mut code, mut k) = (0i32, 0i32);
        for l in 1..=16 {
            let n = i32::from(counts[l - 1]);
            delta[l] = k - code;
            code += n;
            k += n;
            // libjpeg's check: the codes of a length must fit in that length, and none
            // may be all ones.
            if code >= 1 << l {
                return Err(corrupt("bogus Huffman table"));
            }
            if n > 0 {
                maxcode[l] = code - 1;
            }
            code <<= 1;
        }
        Ok(Huff {
            maxcode,
            delta,
            vals: vals.to_vec(),
        })
    }

    /// The code at the top of `window` (MSB first, at least 16 valid bits): its length
    /// and symbol, or `None` when no code matches.
    fn decode(&self, window: u64) -> Option<(u32, u8)> {
        for l in 1..=16u32 {
            let code = (window >> (64 - l)) as i32;
            if code <= self.maxcode[l as usize] {
                let i = (code + self.delta[l as usize]) as usize;
                return self.vals.get(i).map(|&s| (l, s));
            }
        }
        None
    }
}

/// A DC table entry: code length in the low 8 bits (0: not in the table's first
/// [`LUT_BITS`] bits), the value's bit count above. A DC table with a symbol above 15 is
/// refused when a scan uses it, as libjpeg does.
fn dc_lut(h: &Huff) -> Result<Vec<u16>, Error> {
    if h.vals.iter().any(|&v| v > 15) {
        return Err(corrupt("bogus Huffman table definition"));
    }
    let mut lut = vec![0u16; 1 << LUT_BITS];
    for (i, e) in lut.iter_mut().enumerate() {
        let window = (i as u64) << (64 - LUT_BITS);
        if let Some((l, s)) = h.decode(window) {
            if l <= LUT_BITS {
                *e = l as u16 | u16::from(s) << 8;
            }
        }
    }
    Ok(lut)
}

/// An AC skip entry, packed:
/// - bits 0..6: bits the whole run of symbols takes (codes and value bits);
/// - bits 6..13: coefficients they cover (an end of block counts 1);
/// - bit 13: the run ends with an end of block;
/// - bits 14..19: bits of the first symbol alone; bits 19..24: its coefficients;
///   bit 24: it is an end of block;
/// - 0 when the first code is longer than [`LUT_BITS`] (or no code): the slow path.
///
/// A symbol RS (run R, size S) covers R + 1 coefficients and takes its code's length
/// plus S bits; ZRL (0xF0) covers 16; S = 0 with another R ends the block, as libjpeg
/// reads it.
fn ac_lut(h: &Huff) -> Vec<u32> {
    let one = |window: u64, room: u32| -> Option<(u32, u32, bool)> {
        let (l, rs) = h.decode(window)?;
        if l > room {
            return None;
        }
        let (r, s) = (u32::from(rs >> 4), u32::from(rs & 15));
        Some(match (r, s) {
            (15, 0) => (l, 16, false),
            (_, 0) => (l, 1, true),
            _ => (l + s, r + 1, false),
        })
    };
    let mut lut = vec![0u32; 1 << LUT_BITS];
    for (i, e) in lut.iter_mut().enumerate() {
        let window = (i as u64) << (64 - LUT_BITS);
        let Some((l0, a0, eob0)) = one(window, LUT_BITS) else {
            continue;
        };
        let (mut used, mut adv, mut eob) = (l0, a0, eob0);
        // More symbols while their codes lie inside the indexed bits (their value bits
        // may run past them: the length is all a skip needs).
        while !eob && used < LUT_BITS && adv < 64 {
            match one(window << used, LUT_BITS - used) {
                Some((l, a, end)) if used + l <= 63 => {
                    used += l;
                    adv += a;
                    eob = end;
                }
                _ => break,
            }
        }
        *e = used | adv << 6 | u32::from(eob) << 13 | l0 << 14 | a0 << 19 | u32::from(eob0) << 24;
    }
    lut
}

/// One component as the frame and the scan give it.
#[derive(Clone, Copy, Debug, Default)]
struct Comp {
    id: u8,
    h: usize,
    v: usize,
    q: usize,
    dc: usize,
    ac: usize,
}

/// The bit reader over the entropy-coded data: a 64-bit buffer, MSB first.
struct Bits<R> {
    src: R,
    buf: Vec<u8>,
    pos: usize,
    len: usize,
    eof: bool,
    bits: u64,
    nbits: u32,
    /// A marker (or the end of the file) was reached: zero bits are fed from there.
    ended: bool,
    /// Zero bits at the tail of the buffer that no data gave.
    fake: u32,
}

impl<R: Read> Bits<R> {
    /// Make at least 2 bytes available at `pos` unless the file ends.
    fn more(&mut self) -> Result<(), Error> {
        if self.len - self.pos >= 2 || self.eof {
            return Ok(());
        }
        self.buf.copy_within(self.pos..self.len, 0);
        self.len -= self.pos;
        self.pos = 0;
        while self.len < self.buf.len() {
            match self.src.read(&mut self.buf[self.len..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => self.len += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::new(ErrorKind::Io, format!("JPEG: {e}"))),
            }
        }
        Ok(())
    }

    /// The next header byte.
    fn byte(&mut self) -> Result<u8, Error> {
        self.more()?;
        if self.pos >= self.len {
            return Err(corrupt("the file ends inside its header"));
        }
        self.pos += 1;
        Ok(self.buf[self.pos - 1])
    }

    fn u16(&mut self) -> Result<u16, Error> {
        Ok(u16::from(self.byte()?) << 8 | u16::from(self.byte()?))
    }

    /// Skip `n` header bytes.
    fn skip(&mut self, mut n: usize) -> Result<(), Error> {
        while n > 0 {
            self.more()?;
            let k = n.min(self.len - self.pos);
            if k == 0 {
                return Err(corrupt("the file ends inside its header"));
            }
            self.pos += k;
            n -= k;
        }
        Ok(())
    }

    /// Fill the bit buffer to at least 56 bits (zeros past the data's end).
    #[inline]
    fn refill(&mut self) -> Result<(), Error> {
        if !self.ended && self.pos + 8 <= self.len {
            let w = u64::from_be_bytes(self.buf[self.pos..self.pos + 8].try_into().unwrap());
            // No 0xFF byte among the eight: no stuffing, no marker.
            let x = !w;
            if x.wrapping_sub(0x0101_0101_0101_0101) & !x & 0x8080_8080_8080_8080 == 0 {
                // Whole bytes only (the partial one is read again, same bits, next time).
                self.bits |= w >> self.nbits;
                self.pos += ((63 - self.nbits) >> 3) as usize;
                self.nbits |= 56;
                return Ok(());
            }
        }
        self.refill_slow()
    }

    #[cold]
    fn refill_slow(&mut self) -> Result<(), Error> {
        while self.nbits <= 56 {
            let mut b = 0u8;
            if !self.ended {
                self.more()?;
                match self.buf[self.pos..self.len] {
                    [] => self.ended = true,
                    [0xFF, 0x00, ..] => {
                        b = 0xFF;
                        self.pos += 2;
                    }
                    // Fill bytes: libjpeg reads 0xFF..0xFF 0x00 as one stuffed 0xFF
                    // and 0xFF..0xFF then a marker code as the marker.
                    [0xFF, 0xFF, ..] => {
                        self.pos += 1;
                        continue;
                    }
                    // A marker (or 0xFF last in the file): the data ends before it.
                    [0xFF, ..] => self.ended = true,
                    [x, ..] => {
                        b = x;
                        self.pos += 1;
                    }
                }
            }
            if self.ended {
                self.fake += 8;
            }
            self.bits |= u64::from(b) << (56 - self.nbits);
            self.nbits += 8;
        }
        Ok(())
    }

    #[inline]
    fn consume(&mut self, n: u32) {
        self.bits <<= n;
        self.nbits -= n;
    }

    /// One bit (a DC refinement bit).
    #[inline]
    fn bit(&mut self) -> Result<bool, Error> {
        if self.nbits < 32 {
            self.refill()?;
        }
        let v = self.bits >> 63 != 0;
        self.consume(1);
        Ok(v)
    }

    /// Drop the bits left after the last block before a marker (its byte padding): the
    /// marker is at `pos`. A whole byte of data left is libjpeg's "extraneous bytes"
    /// warning, an error as in strict libjpeg; bits past the data's end were a premature end.
    fn align(&mut self) -> Result<(), Error> {
        if self.overrun() {
            return Err(corrupt("Premature end of JPEG file"));
        }
        if self.nbits - self.fake >= 8 {
            return Err(corrupt("corrupt data: extraneous bytes before a marker"));
        }
        self.bits = 0;
        self.nbits = 0;
        self.fake = 0;
        self.ended = false;
        Ok(())
    }

    /// Skip entropy-coded data (stuffed bytes and restart markers) to the next marker.
    fn skip_entropy(&mut self) -> Result<(), Error> {
        self.bits = 0;
        self.nbits = 0;
        self.fake = 0;
        self.ended = false;
        loop {
            self.more()?;
            let avail = &self.buf[self.pos..self.len];
            match avail.iter().position(|&x| x == 0xFF) {
                _ if avail.len() < 2 => return Err(corrupt("Premature end of JPEG file")),
                None => self.pos = self.len - 1,
                Some(i) if i + 1 >= avail.len() => self.pos += i,
                Some(i) => match avail[i + 1] {
                    0x00 | 0xD0..=0xD7 => self.pos += i + 2,
                    0xFF => self.pos += i + 1,
                    _ => {
                        self.pos += i;
                        return Ok(());
                    }
                },
            }
        }
    }

    /// Whether bits past the data's end were used.
    fn overrun(&self) -> bool {
        self.nbits < self.fake
    }

    /// Drop the bits left (byte padding) and read the restart marker `want` (0..8).
    fn restart(&mut self, want: u8) -> Result<(), Error> {
        self.align()?;
        loop {
            self.more()?;
            match self.buf[self.pos..self.len] {
                [0xFF, 0xFF, ..] => self.pos += 1,
                [0xFF, m, ..] if m == 0xD0 + want => {
                    self.pos += 2;
                    return Ok(());
                }
                _ => return Err(corrupt("corrupt data: a restart marker is missing")),
            }
        }
    }
}

/// The next DC difference, by `lut` (see [`dc_lut`]) or `huff` for long codes.
#[inline]
fn dc_diff<R: Read>(b: &mut Bits<R>, lut: &[u16], huff: &Huff) -> Result<i32, Error> {
    if b.nbits < 32 {
        b.refill()?;
    }
    let e = lut[(b.bits >> (64 - LUT_BITS)) as usize];
    let (l, s) = if e != 0 {
        (u32::from(e & 0xFF), u32::from(e >> 8))
    } else {
        let (l, s) = huff
            .decode(b.bits)
            .ok_or_else(|| corrupt("corrupt data: bad Huffman code"))?;
        (l, u32::from(s))
    };
    b.consume(l);
    if s == 0 {
        return Ok(0);
    }
    if s > 15 {
        // libjpeg refuses such a DC table outright.
        return Err(corrupt("corrupt data: bad DC difference size"));
    }
    let v = (b.bits >> (64 - s)) as i32;
    b.consume(s);
    // Annex F's EXTEND: a leading 0 bit means a negative difference.
    Ok(if v < 1 << (s - 1) {
        v - (1 << s) + 1
    } else {
        v
    })
}

/// A scan header: the components (frame indices) with their table selectors, the
/// spectral selection and the successive approximation bits.
#[derive(Clone, Debug)]
struct Scan {
    comps: Vec<(usize, u8)>,
    ss: u8,
    se: u8,
    ah: u8,
    al: u8,
}

/// The next marker's code (fill bytes skipped); a non-marker byte is corrupt data, as
/// in strict libjpeg.
fn read_marker<R: Read>(b: &mut Bits<R>) -> Result<u8, Error> {
    if b.byte()? != 0xFF {
        return Err(corrupt("a marker was expected"));
    }
    let mut m = b.byte()?;
    while m == 0xFF {
        m = b.byte()?;
    }
    Ok(m)
}

/// A DHT segment of `body` bytes into the `dc` and `ac` tables.
fn read_dht<R: Read>(
    b: &mut Bits<R>,
    body: usize,
    dc: &mut [Option<Huff>; 4],
    ac: &mut [Option<Huff>; 4],
) -> Result<(), Error> {
    let mut left = body;
    while left > 0 {
        let tc = b.byte()?;
        let mut counts = [0u8; 16];
        for c in &mut counts {
            *c = b.byte()?;
        }
        let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
        if total > 256 || left < 17 + total {
            return Err(corrupt("bogus Huffman table"));
        }
        let mut vals = vec![0u8; total];
        for v in &mut vals {
            *v = b.byte()?;
        }
        let t = Huff::new(&counts, &vals)?;
        let id = usize::from(tc & 15);
        if id > 3 {
            return Err(corrupt("bogus Huffman table number"));
        }
        match tc >> 4 {
            0 => dc[id] = Some(t),
            1 => ac[id] = Some(t),
            _ => return Err(corrupt("bogus Huffman table class")),
        }
        left -= 17 + total;
    }
    Ok(())
}

/// A DQT segment of `body` bytes: each table's first value (the DC step, all a 1/8
/// decode uses) into `q`.
fn read_dqt<R: Read>(b: &mut Bits<R>, body: usize, q: &mut [Option<i64>; 4]) -> Result<(), Error> {
    let mut left = body;
    while left > 0 {
        let pq = b.byte()?;
        let (wide, id) = (pq >> 4 != 0, usize::from(pq & 15));
        let size = if wide { 129 } else { 65 };
        if id > 3 || left < size {
            return Err(corrupt("bogus quantisation table"));
        }
        let q0 = if wide {
            i64::from(b.u16()?)
        } else {
            i64::from(b.byte()?)
        };
        b.skip(size - 1 - if wide { 2 } else { 1 })?;
        q[id] = Some(q0);
        left -= size;
    }
    Ok(())
}

/// An SOS segment of `body` bytes, its components named by index in `comps`.
fn read_sos<R: Read>(b: &mut Bits<R>, body: usize, comps: &[Comp]) -> Result<Scan, Error> {
    let n = usize::from(b.byte()?);
    if n == 0 || n > 4 || body != 4 + 2 * n {
        return Err(corrupt("bogus scan header length"));
    }
    let mut sc = Vec::with_capacity(n);
    for _ in 0..n {
        let id = b.byte()?;
        let t = b.byte()?;
        let Some(i) = comps.iter().position(|c| c.id == id) else {
            return Err(corrupt("a scan names a component the frame lacks"));
        };
        if t >> 4 > 3 || t & 15 > 3 {
            return Err(corrupt("bogus Huffman table number"));
        }
        if sc.iter().any(|&(j, _)| j == i) {
            return Err(corrupt("a scan names a component twice"));
        }
        sc.push((i, t));
    }
    let (ss, se, a) = (b.byte()?, b.byte()?, b.byte()?);
    Ok(Scan {
        comps: sc,
        ss,
        se,
        ah: a >> 4,
        al: a & 15,
    })
}

/// A progressive JPEG's DC terms and what reading its scans needs.
#[derive(Debug)]
struct Progressive {
    /// The first scan's header, read by `open`.
    first: Option<Scan>,
    /// DC Huffman tables as defined so far.
    dc: [Option<Huff>; 4],
    /// Quantisation tables' DC steps as defined so far.
    quant: [Option<i64>; 4],
    /// Components whose table was latched (at their first scan, as libjpeg does).
    latched: Vec<bool>,
    /// Each component's DC coefficients, `mcus_x * h` by `mcus_y * v` blocks.
    coefs: Vec<Vec<i16>>,
    absorbed: bool,
}

/// Precomputed per block of an MCU.
#[derive(Clone, Copy, Debug)]
struct Slot {
    comp: usize,
    /// Offset of the block's sample in its component's MCU-row plane.
    offset: usize,
}

/// A baseline JPEG's rows at 1/8 scale, from DC terms (see the module's documentation).
pub struct DcRows<R> {
    bits: Bits<R>,
    comps: Vec<Comp>,
    dc_luts: Vec<Vec<u16>>,
    ac_luts: Vec<Vec<u32>>,
    dc_huff: Vec<Huff>,
    ac_huff: Vec<Huff>,
    quant0: [i64; 4],
    slots: Vec<Slot>,
    mcus_x: usize,
    mcus_y: usize,
    vmax: usize,
    restart_interval: u32,
    to_restart: u32,
    next_rst: u8,
    pred: Vec<i32>,
    /// One MCU row of DC samples, a plane per component (`mcus_x * h` by `v`).
    planes: Vec<Vec<u8>>,
    /// The MCU row's output rows, planar, `vmax` rows of `width`.
    out: Vec<Vec<u8>>,
    /// First image row `out` holds, and how many.
    out_y0: u32,
    out_rows: u32,
    mcu_row: usize,
    /// For each component, the plane column of each output column.
    xmap: Vec<Vec<u32>>,
    ycc: Box<[[i32; 256]; 4]>,
    /// Serve Y, Cb, Cr as coded instead of RGB.
    coded: bool,
    /// A progressive JPEG's state: its DC terms, read whole before the first row.
    progressive: Option<Box<Progressive>>,
    /// A read failed: the state is not to be trusted, every later read fails too.
    failed: bool,
    geometry: Geometry,
    /// Full-size width and height.
    pub full: (u32, u32),
    /// The ICC profile of APP2 markers, reassembled in sequence order.
    pub icc: Option<Vec<u8>>,
    /// The JFIF density, when in dots per inch or per centimetre.
    pub resolution: Option<crate::tiff::Resolution>,
}

impl<R> std::fmt::Debug for DcRows<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DcRows")
            .field("geometry", &self.geometry)
            .field("full", &self.full)
            .field("comps", &self.comps)
            .finish()
    }
}

/// libjpeg's 1x1 inverse DCT (jidctred.c) of a DC coefficient as it stores it (16 bits,
/// a block's running sum truncated) with the table's step (a 16-bit multiplier): the
/// dequantised value descaled by 8, through libjpeg's 1024-entry range limit, which
/// clamps within 384 of the range and wraps beyond, as a corrupt or odd file shows.
fn idct_1x1(coef: i16, q: i64) -> u8 {
    let dcval = (i32::from(coef) * i32::from(q as i16) + 4) >> 3;
    match dcval & 1023 {
        x @ 0..=127 => (x + 128) as u8,
        128..=511 => 255,
        512..=895 => 0,
        x => (x - 896) as u8,
    }
}

/// libjpeg's YCbCr to RGB (jdcolor.c): 16-bit fixed point, its rounding.
fn ycc_tables() -> [[i32; 256]; 4] {
    let fix = |x: f64| (x * 65536.0 + 0.5) as i32;
    let half = 1 << 15;
    let mut t = [[0i32; 256]; 4];
    for (i, x) in (-128i32..128).enumerate() {
        t[0][i] = (fix(1.402) * x + half) >> 16; // Cr to R
        t[1][i] = (fix(1.772) * x + half) >> 16; // Cb to B
        t[2][i] = -fix(0.714_14) * x; // Cr to G
        t[3][i] = -fix(0.344_14) * x + half; // Cb to G
    }
    t
}

impl<R: Read> DcRows<R> {
    /// Read the header of the JPEG `src` holds, up to its first scan: `Some` when it is
    /// one this reader decodes, `None` when it is not (see the module's documentation,
    /// and a progressive JPEG whose DC terms, 2 bytes a block, need more than
    /// `max_held` bytes); an error when the header is damaged.
    pub fn open(src: R, max_held: u64) -> Result<Option<Self>, Error> {
        let mut b = Bits {
            src,
            buf: vec![0; BUF_BYTES],
            pos: 0,
            len: 0,
            eof: false,
            bits: 0,
            nbits: 0,
            ended: false,
            fake: 0,
        };
        if b.u16()? != 0xFFD8 {
            return Err(corrupt("not a JPEG (no SOI marker)"));
        }
        let mut quant0: [Option<i64>; 4] = [None; 4];
        let mut dc: [Option<Huff>; 4] = [None, None, None, None];
        let mut ac: [Option<Huff>; 4] = [None, None, None, None];
        let mut frame: Option<(u32, u32, Vec<Comp>, bool)> = None;
        let mut restart_interval = 0u32;
        let (mut jfif, mut adobe) = (false, None);
        let (mut icc, mut icc_bytes, mut resolution) = (Vec::new(), 0usize, None);
        loop {
            // Markers, with any fill bytes before them.
            if b.byte()? != 0xFF {
                return Err(corrupt("a marker was expected"));
            }
            let mut m = b.byte()?;
            while m == 0xFF {
                m = b.byte()?;
            }
            match m {
                0xD8 | 0xD9 | 0xD0..=0xD7 | 0x01 | 0x00 => {
                    return Err(corrupt(format!("marker 0x{m:02X} before the first scan")))
                }
                _ => {}
            }
            let len = usize::from(b.u16()?);
            if len < 2 {
                return Err(corrupt("a marker segment is shorter than its length field"));
            }
            let body = len - 2;
            match m {
                // Baseline and extended sequential, and progressive, Huffman.
                0xC0..=0xC2 => {
                    let p = b.byte()?;
                    let h = u32::from(b.u16()?);
                    let w = u32::from(b.u16()?);
                    let n = usize::from(b.byte()?);
                    if body != 6 + 3 * n {
                        return Err(corrupt("bogus frame header length"));
                    }
                    let mut comps = Vec::with_capacity(n);
                    for _ in 0..n {
                        let id = b.byte()?;
                        let hv = b.byte()?;
                        let q = usize::from(b.byte()?);
                        comps.push(Comp {
                            id,
                            h: usize::from(hv >> 4),
                            v: usize::from(hv & 15),
                            q,
                            ..Comp::default()
                        });
                    }
                    let hmax = comps.iter().map(|c| c.h).max().unwrap_or(1);
                    let vmax = comps.iter().map(|c| c.v).max().unwrap_or(1);
                    // Factors 1..=4 dividing the largest (libjpeg refuses fractional
                    // sampling), at most 10 blocks an MCU (libjpeg's limit).
                    let sane = comps.iter().all(|c| {
                        (1..=4).contains(&c.h)
                            && (1..=4).contains(&c.v)
                            && c.q < 4
                            && hmax % c.h == 0
                            && vmax % c.v == 0
                    }) && (n == 1
                        || comps.iter().map(|c| c.h * c.v).sum::<usize>() <= 10);
                    if p != 8 || h == 0 || w == 0 || !(n == 1 || n == 3) || !sane {
                        // 12-bit, a height given later (DNL), CMYK, odd sampling: libjpeg's,
                        // which refuses or warns as it does.
                        return Ok(None);
                    }
                    frame = Some((w, h, comps, m == 0xC2));
                }
                // Every other frame type: progressive, lossless, arithmetic, hierarchical.
                0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => return Ok(None),
                0xC4 => read_dht(&mut b, body, &mut dc, &mut ac)?,
                0xDB => read_dqt(&mut b, body, &mut quant0)?,
                0xDD => {
                    if body != 2 {
                        return Err(corrupt("bogus restart interval"));
                    }
                    restart_interval = u32::from(b.u16()?);
                }
                0xDA => {
                    let Some((w, h, mut comps, progressive)) = frame.take() else {
                        return Err(corrupt("a scan before the frame header"));
                    };
                    let scan = read_sos(&mut b, body, &comps)?;
                    let order: Vec<usize> = scan.comps.iter().map(|c| c.0).collect();
                    // Sequential: one scan with every component (in frame order), else
                    // libjpeg's. Progressive: the scans are read by `absorb`.
                    let full_scan = (scan.ss, scan.se, scan.ah, scan.al) == (0, 63, 0, 0);
                    if !progressive && (order != (0..comps.len()).collect::<Vec<_>>() || !full_scan)
                    {
                        return Ok(None);
                    }
                    for &(i, t) in &scan.comps {
                        comps[i].dc = usize::from(t >> 4);
                        comps[i].ac = usize::from(t & 15);
                    }
                    // libjpeg's colour space: YCbCr under a JFIF marker; else under an
                    // Adobe marker by its transform flag (0 RGB, 1 YCbCr, others warned
                    // about); else RGB for component ids R, G, B.
                    let rgb_ids = comps.iter().map(|c| c.id).eq(*b"RGB");
                    let ycc = jfif
                        || match adobe {
                            Some(t) => t == 1,
                            None => !rgb_ids,
                        };
                    if comps.len() == 3 && !ycc {
                        return Ok(None);
                    }
                    // The DC planes `absorb` fills: MCUs across and down, times each
                    // component's blocks in an MCU.
                    let hm = comps.iter().map(|c| c.h).max().unwrap_or(1) as u64;
                    let vm = comps.iter().map(|c| c.v).max().unwrap_or(1) as u64;
                    let mcus = u64::from(w).div_ceil(8 * hm) * u64::from(h).div_ceil(8 * vm);
                    let blocks: u64 = comps.iter().map(|c| mcus * (c.h * c.v) as u64).sum();
                    if progressive && blocks * 2 > max_held {
                        return Ok(None);
                    }
                    let prog = progressive.then(|| {
                        Box::new(Progressive {
                            first: Some(scan),
                            dc: dc.clone(),
                            quant: quant0,
                            latched: vec![false; comps.len()],
                            coefs: Vec::new(),
                            absorbed: false,
                        })
                    });
                    let mut r =
                        Self::start(b, w, h, comps, &quant0, &dc, &ac, restart_interval, prog)?;
                    r.icc = crate::jpeg::icc_from_chunks(icc);
                    r.resolution = resolution;
                    return Ok(Some(r));
                }
                // JFIF (APP0) and Adobe (APP14) decide the colour space as in libjpeg
                // (which reads them from 14 and 12 bytes on); JFIF gives the density.
                0xE0 | 0xEE => {
                    let mut head = [0u8; 12];
                    let k = body.min(12);
                    for x in head.iter_mut().take(k) {
                        *x = b.byte()?;
                    }
                    if m == 0xE0 && body >= 14 && head.starts_with(b"JFIF\0") {
                        jfif = true;
                        let be = |i: usize| u16::from_be_bytes([head[i], head[i + 1]]);
                        resolution = crate::jpeg::jfif_resolution(head[7], be(8), be(10));
                    } else if m == 0xEE && body >= 12 && head.starts_with(b"Adobe") {
                        adobe = Some(head[11]);
                    }
                    b.skip(body - k)?;
                }
                // ICC profile chunks.
                0xE2 => {
                    let mut data = vec![0u8; body];
                    for x in &mut data {
                        *x = b.byte()?;
                    }
                    if let Some((seq, chunk)) = crate::jpeg::icc_chunk(&data) {
                        icc_bytes += chunk.len();
                        if icc_bytes > MAX_ICC_BYTES {
                            return Err(Error::hostile(format!(
                                "JPEG: ICC profile chunks over {MAX_ICC_BYTES} bytes"
                            )));
                        }
                        icc.push((seq, chunk.to_vec()));
                    }
                }
                _ => b.skip(body)?,
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn start(
        bits: Bits<R>,
        w: u32,
        h: u32,
        mut comps: Vec<Comp>,
        quant0: &[Option<i64>; 4],
        dc: &[Option<Huff>; 4],
        ac: &[Option<Huff>; 4],
        restart_interval: u32,
        progressive: Option<Box<Progressive>>,
    ) -> Result<Self, Error> {
        if comps.len() == 1 {
            // One component is coded block by block, whatever its sampling factors.
            comps[0].h = 1;
            comps[0].v = 1;
        }
        let hmax = comps.iter().map(|c| c.h).max().unwrap_or(1);
        let vmax = comps.iter().map(|c| c.v).max().unwrap_or(1);
        let mut q = [0i64; 4];
        let (mut dc_luts, mut ac_luts, mut dc_huff, mut ac_huff) = (vec![], vec![], vec![], vec![]);
        for (i, c) in comps.iter_mut().enumerate() {
            if progressive.is_some() {
                // Tables are taken scan by scan (`absorb`).
                continue;
            }
            q[i] = quant0[c.q].ok_or_else(|| corrupt("a quantisation table is missing"))?;
            let d = dc[c.dc]
                .as_ref()
                .ok_or_else(|| corrupt("a Huffman table is missing"))?;
            let a = ac[c.ac]
                .as_ref()
                .ok_or_else(|| corrupt("a Huffman table is missing"))?;
            dc_luts.push(dc_lut(d)?);
            ac_luts.push(ac_lut(a));
            dc_huff.push(d.clone());
            ac_huff.push(a.clone());
            c.dc = i;
            c.ac = i;
        }
        let mcus_x = (w as usize).div_ceil(8 * hmax);
        let mcus_y = (h as usize).div_ceil(8 * vmax);
        let mut slots = Vec::new();
        for (i, c) in comps.iter().enumerate() {
            for y in 0..c.v {
                for x in 0..c.h {
                    slots.push(Slot {
                        comp: i,
                        offset: y * mcus_x * c.h + x,
                    });
                }
            }
        }
        let width = w.div_ceil(8);
        let n = comps.len();
        let xmap = comps
            .iter()
            .map(|c| {
                (0..width as usize)
                    .map(|x| (x * c.h / hmax) as u32)
                    .collect()
            })
            .collect();
        Ok(DcRows {
            progressive,
            failed: false,
            xmap,
            ycc: Box::new(ycc_tables()),
            coded: false,
            bits,
            planes: comps.iter().map(|c| vec![0; mcus_x * c.h * c.v]).collect(),
            out: vec![vec![0; width as usize * vmax]; n],
            pred: vec![0; n],
            comps,
            dc_luts,
            ac_luts,
            dc_huff,
            ac_huff,
            quant0: q,
            slots,
            mcus_x,
            mcus_y,
            vmax,
            restart_interval,
            to_restart: restart_interval,
            next_rst: 0,
            out_y0: 0,
            out_rows: 0,
            mcu_row: 0,
            geometry: Geometry {
                width,
                height: h.div_ceil(8),
                comps: n,
                sample_bytes: 1,
            },
            full: (w, h),
            icc: None,
            resolution: None,
        })
    }

    /// Serve only the first `width` x `height` pixels (as [`crate::jpeg::JpegRows::crop`]).
    pub fn crop(&mut self, width: u32, height: u32) {
        self.geometry.width = width.clamp(1, self.geometry.width);
        self.geometry.height = height.clamp(1, self.geometry.height);
    }

    /// Whether a component is subsampled (its chroma then comes from each block's DC,
    /// which a further reduction by 2 or more averages to what libjpeg gives).
    pub fn subsampled(&self) -> bool {
        let hmax = self.comps.iter().map(|c| c.h).max().unwrap_or(1);
        self.comps.iter().any(|c| c.h < hmax || c.v < self.vmax)
    }

    /// Serve three-component images as coded (Y, Cb, Cr, chroma taken as for RGB)
    /// instead of converting them to RGB.
    pub fn coded(&mut self) {
        self.coded = true;
    }

    /// Fill `planes` with the next MCU row of a progressive JPEG's DC terms, reading
    /// every scan first.
    fn progressive_mcu_row(&mut self) -> Result<(), Error> {
        if !self.progressive.as_ref().is_some_and(|p| p.absorbed) {
            self.absorb()?;
        }
        let Some(p) = self.progressive.as_ref() else {
            return Ok(());
        };
        for (c, comp) in self.comps.iter().enumerate() {
            let pw = self.mcus_x * comp.h;
            let rows = self.mcu_row * comp.v..(self.mcu_row + 1) * comp.v;
            let src = &p.coefs[c][rows.start * pw..rows.end * pw];
            for (o, &coef) in self.planes[c].iter_mut().zip(src) {
                *o = idct_1x1(coef, self.quant0[c]);
            }
        }
        Ok(())
    }

    /// Read every scan of a progressive JPEG to its end: DC scans decoded into the
    /// coefficients, AC scans skipped to their next marker unread.
    fn absorb(&mut self) -> Result<(), Error> {
        let Some(mut p) = self.progressive.take() else {
            return Ok(());
        };
        p.coefs = self
            .comps
            .iter()
            .map(|c| vec![0i16; self.mcus_x * c.h * self.mcus_y * c.v])
            .collect();
        let mut seen = vec![false; self.comps.len()];
        let mut scan = p.first.take();
        let r = loop {
            if let Some(sc) = scan.take() {
                if let Err(e) = self.progressive_scan(&mut p, &sc, &mut seen) {
                    break Err(e);
                }
            }
            let b = &mut self.bits;
            if let Err(e) = b.more() {
                break Err(e);
            }
            if b.pos >= b.len {
                // No EOI: libjpeg's warning, an error here.
                break Err(corrupt("Premature end of JPEG file"));
            }
            let m = match read_marker(b) {
                Ok(m) => m,
                Err(e) => break Err(e),
            };
            let step = (|| -> Result<bool, Error> {
                if m == 0xD9 {
                    return Ok(true);
                }
                // Restart markers and TEM stand alone, harmless here (libjpeg skips them).
                if matches!(m, 0xD0..=0xD7 | 0x01) {
                    return Ok(false);
                }
                if matches!(m, 0xD8 | 0x00) {
                    return Err(corrupt(format!("marker 0x{m:02X} between scans")));
                }
                let body = usize::from(b.u16()?)
                    .checked_sub(2)
                    .ok_or_else(|| corrupt("a marker segment is shorter than its length field"))?;
                match m {
                    0xDA => scan = Some(read_sos(b, body, &self.comps)?),
                    0xC4 => read_dht(b, body, &mut p.dc, &mut [None, None, None, None])?,
                    0xDB => read_dqt(b, body, &mut p.quant)?,
                    0xDD => {
                        if body != 2 {
                            return Err(corrupt("bogus restart interval"));
                        }
                        self.restart_interval = u32::from(b.u16()?);
                    }
                    _ => b.skip(body)?,
                }
                Ok(false)
            })();
            match step {
                Ok(true) => break Ok(()),
                Ok(false) => {}
                Err(e) => break Err(e),
            }
        };
        // A component no DC scan named keeps zero terms (grey), as in libjpeg.
        p.absorbed = r.is_ok();
        self.progressive = Some(p);
        r
    }

    /// One scan of a progressive JPEG (see [`DcRows::absorb`]).
    fn progressive_scan(
        &mut self,
        p: &mut Progressive,
        sc: &Scan,
        seen: &mut [bool],
    ) -> Result<(), Error> {
        if sc.ss != 0 {
            // AC terms: not needed at 1/8.
            return self.bits.skip_entropy();
        }
        if sc.se != 0 || sc.al > 13 || (sc.ah != 0 && sc.ah != sc.al + 1) {
            return Err(corrupt("bogus progression parameters"));
        }
        let first = sc.ah == 0;
        let mut luts = Vec::with_capacity(sc.comps.len());
        for &(c, t) in &sc.comps {
            if !p.latched[c] {
                self.quant0[c] = p.quant[self.comps[c].q]
                    .ok_or_else(|| corrupt("a quantisation table is missing"))?;
                p.latched[c] = true;
            }
            if first {
                seen[c] = true;
                let h = p.dc[usize::from(t >> 4)]
                    .clone()
                    .ok_or_else(|| corrupt("a Huffman table is missing"))?;
                luts.push((dc_lut(&h)?, h));
            } else if !seen[c] {
                return Err(corrupt("a DC refinement scan before the first DC scan"));
            }
        }
        // Blocks in coding order: MCUs of every component's blocks when interleaved,
        // else the one component's blocks row by row (its own size, not padded to MCUs).
        let mut blocks: Vec<(usize, usize)> = Vec::new();
        let (units_x, units_y) = if sc.comps.len() == 1 {
            let c = &self.comps[sc.comps[0].0];
            let hmax = self.comps.iter().map(|c| c.h).max().unwrap_or(1);
            let (w, h) = self.full;
            (
                (w as usize * c.h).div_ceil(hmax).div_ceil(8),
                (h as usize * c.v).div_ceil(self.vmax).div_ceil(8),
            )
        } else {
            for (k, &(c, _)) in sc.comps.iter().enumerate() {
                let cc = &self.comps[c];
                for y in 0..cc.v {
                    for x in 0..cc.h {
                        blocks.push((k, y * self.mcus_x * cc.h + x));
                    }
                }
            }
            (self.mcus_x, self.mcus_y)
        };
        let mut pred = [0i32; 4];
        let (mut to_restart, mut next_rst) = (self.restart_interval, 0u8);
        let one = [(0usize, 0usize)];
        for uy in 0..units_y {
            for ux in 0..units_x {
                if self.restart_interval > 0 {
                    if to_restart == 0 {
                        self.bits.restart(next_rst)?;
                        next_rst = (next_rst + 1) & 7;
                        pred = [0; 4];
                        to_restart = self.restart_interval;
                    }
                    to_restart -= 1;
                }
                let list: &[(usize, usize)] = if sc.comps.len() == 1 { &one } else { &blocks };
                for &(k, off) in list {
                    let c = sc.comps[k].0;
                    let cc = &self.comps[c];
                    let pw = self.mcus_x * cc.h;
                    let at = if sc.comps.len() == 1 {
                        uy * pw + ux
                    } else {
                        uy * cc.v * pw + ux * cc.h + off
                    };
                    if first {
                        let (lut, h) = &luts[k];
                        let d = dc_diff(&mut self.bits, lut, h)?;
                        pred[k] = pred[k].wrapping_add(d);
                        p.coefs[c][at] = (pred[k] << sc.al) as i16;
                    } else if self.bits.bit()? {
                        p.coefs[c][at] |= 1 << sc.al;
                    }
                }
            }
            if self.bits.overrun() {
                return Err(corrupt("Premature end of JPEG file"));
            }
        }
        self.bits.align()
    }

    /// Decode the next MCU row into `planes`.
    fn decode_mcu_row(&mut self) -> Result<(), Error> {
        let slots = std::mem::take(&mut self.slots);
        let r = self.decode_mcu_row_with(&slots);
        self.slots = slots;
        r
    }

    fn decode_mcu_row_with(&mut self, slots: &[Slot]) -> Result<(), Error> {
        for mx in 0..self.mcus_x {
            if self.restart_interval > 0 {
                if self.to_restart == 0 {
                    self.bits.restart(self.next_rst)?;
                    self.next_rst = (self.next_rst + 1) & 7;
                    self.pred.iter_mut().for_each(|p| *p = 0);
                    self.to_restart = self.restart_interval;
                }
                self.to_restart -= 1;
            }
            for s in slots {
                let c = s.comp;
                let dc = self.dc_block(c)?;
                self.skip_ac(c)?;
                let pred = self.pred[c].wrapping_add(dc);
                self.pred[c] = pred;
                let plane = &mut self.planes[c];
                plane[s.offset + mx * self.comps[c].h] = idct_1x1(pred as i16, self.quant0[c]);
            }
            if self.bits.overrun() {
                return Err(corrupt("Premature end of JPEG file"));
            }
        }
        Ok(())
    }

    /// The DC difference of the next block of component `c`.
    #[inline]
    fn dc_block(&mut self, c: usize) -> Result<i32, Error> {
        dc_diff(&mut self.bits, &self.dc_luts[c], &self.dc_huff[c])
    }

    /// Skip the AC coefficients of the next block of component `c`.
    #[inline]
    fn skip_ac(&mut self, c: usize) -> Result<(), Error> {
        let lut = &self.ac_luts[c];
        let b = &mut self.bits;
        let mut k = 1u32;
        loop {
            if b.nbits < 32 {
                b.refill()?;
            }
            let e = lut[(b.bits >> (64 - LUT_BITS)) as usize];
            if e == 0 {
                let (l, rs) = self.ac_huff[c]
                    .decode(b.bits)
                    .ok_or_else(|| corrupt("corrupt data: bad Huffman code"))?;
                let (r, s) = (u32::from(rs >> 4), u32::from(rs & 15));
                b.consume(l);
                if s == 0 {
                    if r != 15 {
                        return Ok(());
                    }
                    k += 16;
                } else {
                    b.consume(s);
                    k += r + 1;
                }
            } else {
                let adv = (e >> 6) & 0x7F;
                if k + adv <= 64 {
                    b.consume(e & 0x3F);
                    k += adv;
                    if e & (1 << 13) != 0 {
                        return Ok(());
                    }
                } else {
                    // The run may cross into the next block: its first symbol only.
                    b.consume((e >> 14) & 0x1F);
                    k += (e >> 19) & 0x1F;
                    if e & (1 << 24) != 0 {
                        return Ok(());
                    }
                }
            }
            if k >= 64 {
                return Ok(());
            }
        }
    }

    /// Decode the next MCU row and convert it to output rows.
    fn next_rows(&mut self) -> Result<(), Error> {
        if self.mcu_row >= self.mcus_y {
            return Err(Error::new(ErrorKind::Internal, "JPEG: past the last row"));
        }
        if self.progressive.is_some() {
            self.progressive_mcu_row()?;
        } else {
            self.decode_mcu_row()?;
        }
        self.mcu_row += 1;
        let y0 = (self.mcu_row - 1) * self.vmax;
        let rows = self
            .vmax
            .min(self.geometry.height as usize - y0.min(self.geometry.height as usize));
        let w = self.out[0].len() / self.vmax;
        // The plane row of component `c` for output row `y` of this MCU row.
        let row = |c: usize, y: usize| {
            let cc = &self.comps[c];
            let pw = self.mcus_x * cc.h;
            let r = y * cc.v / self.vmax;
            &self.planes[c][r * pw..(r + 1) * pw]
        };
        let mut out = std::mem::take(&mut self.out);
        if self.comps.len() == 1 || self.coded {
            for (c, o) in out.iter_mut().enumerate() {
                for y in 0..rows {
                    let src = row(c, y);
                    for (o, &x) in o[y * w..(y + 1) * w].iter_mut().zip(&self.xmap[c]) {
                        *o = src[x as usize];
                    }
                }
            }
        } else {
            let t = &*self.ycc;
            let [o0, o1, o2] = &mut out[..] else {
                unreachable!("three components")
            };
            for y in 0..rows {
                let (py, pb, pr) = (row(0, y), row(1, y), row(2, y));
                let (xy, xb, xr) = (&self.xmap[0], &self.xmap[1], &self.xmap[2]);
                for x in 0..w {
                    let yy = i32::from(py[xy[x] as usize]);
                    let cb = usize::from(pb[xb[x] as usize]);
                    let cr = usize::from(pr[xr[x] as usize]);
                    let i = y * w + x;
                    o0[i] = (yy + t[0][cr]).clamp(0, 255) as u8;
                    o1[i] = (yy + ((t[3][cb] + t[2][cr]) >> 16)).clamp(0, 255) as u8;
                    o2[i] = (yy + t[1][cb]).clamp(0, 255) as u8;
                }
            }
        }
        self.out = out;
        self.out_y0 = y0 as u32;
        self.out_rows = rows as u32;
        Ok(())
    }
}

impl<R: Read> RowSource for DcRows<R> {
    fn geometry(&self) -> Geometry {
        self.geometry
    }

    fn read_band(&mut self, y0: u32, rows: u32, band: &mut Band) -> Result<(), Error> {
        let g = self.geometry;
        if y0 < self.out_y0 || y0 + rows > g.height {
            return Err(Error::new(
                ErrorKind::Internal,
                "JPEG rows are read in order",
            ));
        }
        band.shape(y0, rows, g.width, g.comps, 1);
        let w = g.width as usize;
        let full_w = self.out[0].len() / self.vmax;
        for y in y0..y0 + rows {
            while y >= self.out_y0 + self.out_rows {
                if self.failed {
                    return Err(corrupt("an earlier read of this file failed"));
                }
                if let Err(e) = self.next_rows() {
                    self.failed = true;
                    return Err(e);
                }
            }
            let r = (y - self.out_y0) as usize;
            let o = (y - y0) as usize * w;
            for (plane, out) in band.planes.iter_mut().zip(&self.out) {
                plane[o..o + w].copy_from_slice(&out[r * full_w..r * full_w + w]);
            }
        }
        Ok(())
    }
}
