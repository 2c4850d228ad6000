//! The TIFF codecs of the reader's own decode path: one stored strip or tile (FillOrder
//! already undone) in, its bytes as they were before compression out (rows of packed
//! samples, file byte order), with the horizontal predictor undone. Everything the tiff
//! crate's decoder cannot reach goes through here: palette and 9 to 15-bit data, old-style
//! LZW, CCITT Group 3, LZMA, WebP. Maintained crates do the decoding where one exists
//! (weezl, flate2, xz2, image-webp, fax); what none does is written here, each with
//! the reason.

use membudget::Error;
use std::io::Read;

/// The compressions this path decodes, by TIFF code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codec {
    /// 2: CCITT modified Huffman (one-dimensional, no EOLs, byte-aligned rows).
    Huffman,
    /// 3: CCITT Group 3 (T.4); `two_d` from T4Options bit 0.
    Fax3 { two_d: bool },
    /// 4: CCITT Group 4 (T.6).
    Fax4,
    /// 5: LZW, the TIFF 6 variant or the old-style (pre-6.0, LSB-first) one.
    Lzw,
    /// 8 and 32946: zlib.
    Deflate,
    /// 32773.
    PackBits,
    /// 34925: an XZ stream, as libtiff's LZMA codec writes it.
    Lzma,
    /// 50001: each chunk a WebP image of 3 or 4 8-bit channels.
    WebP,
}

impl Codec {
    /// The codec for a TIFF compression code, or `None` for codes this path does not know.
    pub(crate) fn from_code(code: u16, t4options: u32) -> Option<Codec> {
        Some(match code {
            2 => Codec::Huffman,
            3 => Codec::Fax3 {
                two_d: t4options & 1 != 0,
            },
            4 => Codec::Fax4,
            5 => Codec::Lzw,
            8 | 32946 => Codec::Deflate,
            32773 => Codec::PackBits,
            34925 => Codec::Lzma,
            50001 => Codec::WebP,
            _ => return None,
        })
    }

    /// Whether the codec takes FillOrder=2 bit reversal of its stored bytes (not the image
    /// codecs, as in libtiff and tifffile).
    pub(crate) fn reverses_stored_bytes(self) -> bool {
        self != Codec::WebP
    }
}

/// What one decoded chunk must hold.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    /// Pixels per row in the chunk (a tile's full width).
    pub width: u32,
    /// Rows in the chunk.
    pub rows: u32,
    /// Bytes per row.
    pub row_bytes: usize,
    /// Samples per pixel in this chunk (1 when planar).
    pub spp: usize,
    /// Bits per sample.
    pub bits: u8,
}

/// Decode `stored` into `out` (cleared first; `shape.rows * shape.row_bytes` bytes when
/// complete). A chunk that decodes short is left short: the caller refuses rows it lacks.
pub(crate) fn decode(
    codec: Codec,
    stored: &[u8],
    shape: Shape,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    let want = shape.rows as usize * shape.row_bytes;
    out.clear();
    match codec {
        Codec::Lzw => lzw(stored, want, out)?,
        Codec::Deflate => {
            flate2::read::ZlibDecoder::new(stored)
                .take(want as u64)
                .read_to_end(out)
                .map_err(|e| Error::corrupt(format!("TIFF: Deflate data: {e}")))?;
        }
        Codec::PackBits => packbits(stored, want, out),
        Codec::Lzma => {
            // liblzma itself (through xz2), as libtiff: its streams may use the delta filter.
            xz2::read::XzDecoder::new(stored)
                .take(want as u64)
                .read_to_end(out)
                .map_err(|e| Error::corrupt(format!("TIFF: LZMA data: {e}")))?;
        }
        Codec::WebP => webp(stored, shape, out)?,
        Codec::Fax4 => fax4(stored, shape, out)?,
        Codec::Huffman => fax3(stored, shape, Fax3Mode::Huffman, out)?,
        Codec::Fax3 { two_d } => fax3(
            stored,
            shape,
            if two_d {
                Fax3Mode::TwoD
            } else {
                Fax3Mode::OneD
            },
            out,
        )?,
    }
    Ok(())
}

/// LZW through weezl. Old-style LZW (TIFF before 6.0: codes least significant bit first,
/// code width growing one code later) is told apart as libtiff does: its data starts
/// with a 0 byte and then an odd one (the clear code 256 written LSB-first).
fn lzw(stored: &[u8], want: usize, out: &mut Vec<u8>) -> Result<(), Error> {
    use weezl::{decode::Decoder, BitOrder, LzwStatus};
    let old_style = stored.len() >= 2 && stored[0] == 0 && stored[1] & 1 == 1;
    let mut dec = if old_style {
        Decoder::new(BitOrder::Lsb, 8)
    } else {
        Decoder::with_tiff_size_switch(BitOrder::Msb, 8)
    };
    out.resize(want, 0);
    let (mut inp, mut done) = (stored, 0usize);
    while done < want {
        let r = dec.decode_bytes(inp, &mut out[done..]);
        inp = &inp[r.consumed_in..];
        done += r.consumed_out;
        match r.status {
            Ok(LzwStatus::Done) => break,
            Ok(LzwStatus::NoProgress) => break,
            Ok(LzwStatus::Ok) if r.consumed_in == 0 && r.consumed_out == 0 => break,
            Ok(LzwStatus::Ok) => {}
            // libtiff keeps what decoded before a bad code (with a warning); so does this.
            Err(_) if done > 0 => break,
            Err(e) => return Err(Error::corrupt(format!("TIFF: LZW data: {e}"))),
        }
    }
    out.truncate(done);
    Ok(())
}

/// PackBits, written here: eight lines that no maintained crate exports on its own (the
/// tiff crate's reader is private).
fn packbits(mut stored: &[u8], want: usize, out: &mut Vec<u8>) {
    while out.len() < want {
        let Some((&n, rest)) = stored.split_first() else {
            break;
        };
        let n = n as i8;
        if n >= 0 {
            let len = (n as usize + 1).min(rest.len());
            out.extend_from_slice(&rest[..len]);
            stored = &rest[len..];
        } else if n != -128 {
            let Some((&b, rest)) = rest.split_first() else {
                break;
            };
            out.extend(std::iter::repeat_n(b, 1 + (-i16::from(n)) as usize));
            stored = rest;
        } else {
            stored = rest;
        }
    }
    out.truncate(want);
}

/// A WebP chunk through image-webp, as 3 or 4 channels per the TIFF's samples.
fn webp(stored: &[u8], shape: Shape, out: &mut Vec<u8>) -> Result<(), Error> {
    let bad = |e: image_webp::DecodingError| Error::corrupt(format!("TIFF: WebP data: {e}"));
    let mut dec = image_webp::WebPDecoder::new(std::io::Cursor::new(stored)).map_err(bad)?;
    let (w, h) = dec.dimensions();
    if shape.bits != 8 || !(3..=4).contains(&shape.spp) {
        return Err(Error::unsupported(
            "WebP-compressed TIFF with other than 3 or 4 samples of 8 bits",
        ));
    }
    if w != shape.width || h > shape.rows {
        return Err(Error::corrupt(format!(
            "TIFF: a WebP chunk of {w}x{h} in a chunk of {}x{}",
            shape.width, shape.rows
        )));
    }
    let len = dec
        .output_buffer_size()
        .ok_or_else(|| Error::corrupt("TIFF: WebP chunk too large"))?;
    let mut px = vec![0u8; len];
    dec.read_image(&mut px).map_err(bad)?;
    let have = if dec.has_alpha() { 4 } else { 3 };
    out.reserve(w as usize * h as usize * shape.spp);
    for p in px.chunks_exact(have) {
        out.extend_from_slice(&p[..3]);
        if shape.spp == 4 {
            out.push(if have == 4 { p[3] } else { 255 });
        }
    }
    Ok(())
}

/// One row of a bilevel image from its colour changes (positions where the colour flips,
/// starting white): black pixels are 1 bits, as libtiff's fax decoders write them.
fn put_row(changes: &[u16], width: u32, row_bytes: usize, out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + row_bytes, 0);
    let row = &mut out[start..];
    let mut black = false;
    let mut x = 0u32;
    for &c in changes.iter().chain(std::iter::once(&u16::MAX)) {
        let end = u32::from(c).min(width);
        if black {
            for p in x..end {
                row[(p / 8) as usize] |= 0x80 >> (p % 8);
            }
        }
        x = end.max(x);
        black = !black;
        if x >= width {
            break;
        }
    }
}

/// Group 4 through the fax crate; missing rows at the end are white, as there.
fn fax4(stored: &[u8], shape: Shape, out: &mut Vec<u8>) -> Result<(), Error> {
    let (width, rows) = fax_size(shape)?;
    let mut n = 0u32;
    let ok = fax::decoder::decode_g4(stored.iter().copied(), width, Some(rows), |changes| {
        if n < shape.rows {
            put_row(changes, shape.width, shape.row_bytes, out);
            n += 1;
        }
    });
    if ok.is_none() && n == 0 {
        return Err(Error::corrupt("TIFF: Group 4 fax data does not decode"));
    }
    Ok(())
}

fn fax_size(shape: Shape) -> Result<(u16, u16), Error> {
    if shape.bits != 1 || shape.spp != 1 {
        return Err(Error::corrupt(
            "TIFF: CCITT compression of other than 1-bit samples",
        ));
    }
    match (u16::try_from(shape.width), u16::try_from(shape.rows)) {
        (Ok(w), Ok(h)) => Ok((w, h)),
        _ => Err(Error::unsupported(
            "CCITT-compressed strips or tiles wider or taller than 65535 pixels",
        )),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fax3Mode {
    Huffman,
    OneD,
    TwoD,
    /// PDF's EncodedByteAlign one-dimensional rows: each on a byte boundary, EOLs or not.
    AlignedOneD,
    /// PDF's EncodedByteAlign mixed rows (K > 0): each row's tag bit on a byte boundary
    /// or right after an EOL that ends on one.
    AlignedTwoD,
    /// PDF's EncodedByteAlign Group 4 (K < 0): two-dimensional rows without tags or
    /// EOLs, each on a byte boundary.
    AlignedFour,
}

/// CCITT fax data as a PDF's CCITTFaxDecode filter holds it (PDF 32000-1, 7.4.6): `k`
/// < 0 Group 4, 0 Group 3 one-dimensional, > 0 Group 3 mixed; `byte_align` is
/// EncodedByteAlign (each row starts on a byte boundary). Returns `rows` rows of
/// `columns` pixels packed 8 to a byte, most significant bit first, black as 1 bits;
/// rows the data does not reach are white. The same decoders as TIFF's, so PDF pages and
/// TIFF strips decode alike.
pub fn decode_ccitt(
    stored: &[u8],
    k: i64,
    columns: u32,
    rows: u32,
    byte_align: bool,
) -> Result<Vec<u8>, Error> {
    let shape = Shape {
        width: columns,
        rows,
        row_bytes: (columns as usize).div_ceil(8),
        spp: 1,
        bits: 1,
    };
    let mut out = Vec::new();
    match (k, byte_align) {
        (..0, false) => fax4(stored, shape, &mut out)?,
        // The fax crate's Group 4 decoder has no byte alignment between rows: the rows
        // go through the Group 3 decoder's two-dimensional coding instead.
        (..0, true) => fax3(stored, shape, Fax3Mode::AlignedFour, &mut out)?,
        (0, false) => fax3(stored, shape, Fax3Mode::OneD, &mut out)?,
        (0, true) => fax3(stored, shape, Fax3Mode::AlignedOneD, &mut out)?,
        (_, false) => fax3(stored, shape, Fax3Mode::TwoD, &mut out)?,
        (_, true) => fax3(stored, shape, Fax3Mode::AlignedTwoD, &mut out)?,
    }
    out.resize(rows as usize * shape.row_bytes, 0);
    Ok(out)
}

/// A bit reader over a slice that knows its position, for the fax crate's code tables
/// (its own reader has none, and modified Huffman needs byte alignment). Past the end it
/// reads 0 bits; `pos` tells how far it went.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn bit(&self, at: usize) -> u16 {
        self.data
            .get(at / 8)
            .map_or(0, |b| u16::from(b >> (7 - at % 8) & 1))
    }
    fn end(&self) -> bool {
        self.pos >= self.data.len() * 8
    }
}

impl fax::BitReader for Bits<'_> {
    type Error = ();
    fn peek(&self, bits: u8) -> Option<u16> {
        if bits > 16 {
            return None;
        }
        Some((0..usize::from(bits)).fold(0, |v, k| v << 1 | self.bit(self.pos + k)))
    }
    fn consume(&mut self, bits: u8) -> Result<(), ()> {
        self.pos += usize::from(bits);
        Ok(())
    }
    fn bits_to_byte_boundary(&self) -> u8 {
        ((8 - self.pos % 8) % 8) as u8
    }
}

/// CCITT modified Huffman and Group 3, one- and two-dimensional. Written here because the
/// fax crate decodes only one-dimensional Group 3 that starts with an EOL; its code tables
/// are used. A row that runs out of data is finished white and decoding stops there, as
/// libtiff does after its "premature EOF" warning.
fn fax3(stored: &[u8], shape: Shape, mode: Fax3Mode, out: &mut Vec<u8>) -> Result<(), Error> {
    use fax::BitReader;
    let (width, _) = fax_size(shape)?;
    let mut r = Bits {
        data: stored,
        pos: 0,
    };
    let mut reference: Vec<u16> = Vec::new();
    let mut current: Vec<u16> = Vec::new();
    for _ in 0..shape.rows {
        if mode == Fax3Mode::Huffman {
            // Each row starts on a byte boundary.
            let skip = r.bits_to_byte_boundary();
            let _ = r.consume(skip);
        } else if mode == Fax3Mode::AlignedFour {
            let skip = r.bits_to_byte_boundary();
            let _ = r.consume(skip);
        } else if matches!(mode, Fax3Mode::AlignedOneD | Fax3Mode::AlignedTwoD) {
            // Fill, then maybe an EOL that ends on a byte boundary, then the row on the
            // next boundary. Eleven 0 bits and a 1 ending a byte is that EOL: padding
            // (under 8 bits) and a row's first code never hold eleven 0 bits there.
            let end = r.data.len() * 8;
            let zeros = (r.pos..end).take_while(|&i| r.bit(i) == 0).count();
            if zeros >= 11 && (r.pos + zeros + 1).is_multiple_of(8) {
                r.pos += zeros + 1;
            }
            let skip = r.bits_to_byte_boundary();
            let _ = r.consume(skip);
        } else if r.peek(8) == Some(0) {
            // An EOL (eleven or more 0 bits, then a 1) may precede the row: no run code
            // starts with eight 0 bits, so eight of them are fill or EOL.
            while r.peek(1) == Some(0) && !r.end() {
                let _ = r.consume(1);
            }
            let _ = r.consume(1);
        }
        if r.end() {
            break;
        }
        let two_d_row = mode == Fax3Mode::AlignedFour
            || matches!(mode, Fax3Mode::TwoD | Fax3Mode::AlignedTwoD) && {
                let tag = r.peek(1);
                let _ = r.consume(1);
                tag == Some(0)
            };
        current.clear();
        let ok = if two_d_row {
            line_2d(&mut r, width, &reference, &mut current)
        } else {
            line_1d(&mut r, width, &mut current)
        };
        put_row(&current, shape.width, shape.row_bytes, out);
        if !ok || r.pos > stored.len() * 8 {
            if !ok && out.len() == shape.row_bytes {
                return Err(Error::corrupt("TIFF: CCITT Group 3 data does not decode"));
            }
            break;
        }
        std::mem::swap(&mut reference, &mut current);
    }
    // Rows the data did not reach are white.
    out.resize(shape.rows as usize * shape.row_bytes, 0);
    Ok(())
}

/// One run: make-up codes (64 and up) then one terminating code (below 64).
fn run(r: &mut Bits<'_>, black: bool) -> Option<u16> {
    let mut total = 0u16;
    loop {
        let v = if black {
            fax::maps::black::decode(r)?
        } else {
            fax::maps::white::decode(r)?
        };
        total = total.checked_add(v)?;
        if v < 64 {
            return Some(total);
        }
    }
}

/// A one-dimensional row: alternating white and black runs from white.
fn line_1d(r: &mut Bits<'_>, width: u16, cur: &mut Vec<u16>) -> bool {
    let mut a0 = 0u16;
    let mut black = false;
    while a0 < width {
        let Some(n) = run(r, black) else {
            return false;
        };
        a0 = a0.saturating_add(n);
        if a0 < width {
            cur.push(a0);
        }
        black = !black;
    }
    true
}

/// A two-dimensional row (T.4 section 4.2), coded against the row above: the changing
/// elements b1, b2 of the reference row, then pass, horizontal and vertical modes.
fn line_2d(r: &mut Bits<'_>, width: u16, reference: &[u16], cur: &mut Vec<u16>) -> bool {
    use fax::maps::{mode, Mode};
    let w = i32::from(width);
    // a0 starts just before the row; colour changes at even indices turn black.
    let mut a0: i32 = -1;
    let mut black = false;
    while a0 < w {
        // b1: the first change on the reference row right of a0 to the opposite colour
        // of a0's (changes to black sit at even indices); b2: the change after it.
        let want_even = !black;
        let i = reference
            .iter()
            .enumerate()
            .position(|(k, &c)| i32::from(c) > a0 && (k % 2 == 0) == want_even)
            .unwrap_or(reference.len());
        let b1 = reference.get(i).map_or(w, |&c| i32::from(c));
        let b2 = reference.get(i + 1).map_or(w, |&c| i32::from(c));
        let Some(m) = mode::decode(r) else {
            return false;
        };
        match m {
            Mode::Pass => a0 = b2,
            Mode::Horizontal => {
                let start = a0.max(0);
                let (Some(r1), Some(r2)) = (run(r, black), run(r, !black)) else {
                    return false;
                };
                let a1 = start + i32::from(r1);
                let a2 = a1 + i32::from(r2);
                for a in [a1, a2] {
                    if a < w {
                        cur.push(a as u16);
                    }
                }
                a0 = a2;
            }
            Mode::Vertical(d) => {
                let a1 = b1 + i32::from(d);
                if a1 < 0 || a1 > w || a1 < a0 {
                    return false;
                }
                if a1 < w {
                    cur.push(a1 as u16);
                }
                black = !black;
                a0 = a1;
            }
            Mode::Extension | Mode::EOF => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(width: u32, rows: u32, bits: u8) -> Shape {
        Shape {
            width,
            rows,
            row_bytes: (width as usize * usize::from(bits)).div_ceil(8),
            spp: 1,
            bits,
        }
    }

    /// The PackBits example of TIFF 6.0, section 9.
    #[test]
    fn packbits_spec_example() {
        let packed = [
            0xFE, 0xAA, 0x02, 0x80, 0x00, 0x2A, 0xFD, 0xAA, 0x03, 0x80, 0x00, 0x2A, 0x22, 0xF7,
            0xAA,
        ];
        let want = [
            0xAA, 0xAA, 0xAA, 0x80, 0x00, 0x2A, 0xAA, 0xAA, 0xAA, 0xAA, 0x80, 0x00, 0x2A, 0x22,
            0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA,
        ];
        let mut out = Vec::new();
        decode(Codec::PackBits, &packed, shape(24, 1, 8), &mut out).unwrap();
        assert_eq!(out, want);
    }

    /// Both LZW variants decode: TIFF 6 (MSB first, early change) and old-style (LSB
    /// first, as GIF), told apart by the first bytes.
    #[test]
    fn lzw_both_variants() {
        let data: Vec<u8> = (0..4000u32).map(|i| (i * 7 % 251) as u8).collect();
        let new = weezl::encode::Encoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8)
            .encode(&data)
            .unwrap();
        let old = weezl::encode::Encoder::new(weezl::BitOrder::Lsb, 8)
            .encode(&data)
            .unwrap();
        assert_eq!(
            (old[0], old[1] & 1),
            (0, 1),
            "old-style starts with a clear code"
        );
        for stored in [new, old] {
            let mut out = Vec::new();
            decode(Codec::Lzw, &stored, shape(4000, 1, 8), &mut out).unwrap();
            assert_eq!(out, data);
        }
    }

    /// Random bytes through every codec: data or an error, never a panic, never more
    /// than the chunk holds.
    #[test]
    fn random_data_never_panics() {
        let mut rng = testkit::rng::Rng::new(9);
        let codecs = [
            Codec::Huffman,
            Codec::Fax3 { two_d: false },
            Codec::Fax3 { two_d: true },
            Codec::Fax4,
            Codec::Lzw,
            Codec::Deflate,
            Codec::PackBits,
            Codec::Lzma,
            Codec::WebP,
        ];
        for i in 0..3000 {
            let codec = codecs[i % codecs.len()];
            let len = (rng.next_u64() % 300) as usize;
            let mut stored: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            if i % 3 == 0 && !stored.is_empty() {
                stored[0] = 0; // mostly zero bits: fax EOLs, old-style LZW
            }
            let s = match codec {
                Codec::WebP => Shape {
                    spp: 3,
                    ..shape(17, 9, 8)
                },
                Codec::Huffman | Codec::Fax3 { .. } | Codec::Fax4 => shape(37, 11, 1),
                _ => shape(37, 11, 8),
            };
            let mut out = Vec::new();
            if decode(codec, &stored, s, &mut out).is_ok() && codec != Codec::WebP {
                assert!(out.len() <= s.rows as usize * s.row_bytes, "{codec:?}");
            }
        }
    }
}
