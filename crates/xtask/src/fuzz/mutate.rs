//! Mutators: generic byte edits (bit flips, boundary values, truncation, chunk insert /
//! delete / duplicate) and format-aware edits of the fields a parser trusts (TIFF IFD
//! entries, LAS header and VLR fields, FITS cards, ZIP records, PDF numbers, manifest
//! record values). Every choice comes from one [`Rng`], so a case is its seed.

use super::Format;

/// The test suites' seeded generator (testkit's SplitMix64), one stream per
/// `(seed, tool, case)`, so a case id names the same mutant on every machine.
#[derive(Debug, Clone)]
pub struct Rng(testkit::Rng);

impl Rng {
    /// A generator for `(seed, stream, case)`: independent streams per tool and case.
    pub fn new(seed: u64, stream: &str, case: u64) -> Rng {
        let mut mix = testkit::Rng::new(seed ^ 0x6A09_E667_F3BC_C909);
        let mut s = mix.next_u64();
        for b in stream.bytes() {
            s = testkit::Rng::new(s ^ u64::from(b)).next_u64();
        }
        Rng(testkit::Rng::new(
            s ^ case.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        ))
    }

    pub fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `0..n` (`n` > 0); the modulo bias is irrelevant here.
    pub fn below(&mut self, n: usize) -> usize {
        self.0.below(n.max(1) as u64) as usize
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.next() % den < num
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Values that sit on the edges parsers get wrong: zero, one, all ones, the signed
/// limits, powers of two around 16 and 32 bits, and sizes near the file's own.
fn boundary(rng: &mut Rng, len: usize) -> u64 {
    let len = len as u64;
    let v = [
        0,
        1,
        2,
        3,
        7,
        0x7F,
        0x80,
        0xFF,
        0x7FFF,
        0x8000,
        0xFFFF,
        0x1_0000,
        0x7FFF_FFFF,
        0x8000_0000,
        0xFFFF_FFFF,
        0x1_0000_0000,
        0x7FFF_FFFF_FFFF_FFFF,
        0x8000_0000_0000_0000,
        u64::MAX,
        len,
        len.wrapping_sub(1),
        len + 1,
        len / 2,
        len.wrapping_mul(8),
    ];
    *rng.pick(&v)
}

/// Write `v` as a `width`-byte integer at `at` (clipped to the buffer).
fn put(buf: &mut [u8], at: usize, width: usize, v: u64, big_endian: bool) {
    let bytes = if big_endian {
        v.to_be_bytes()[8 - width..].to_vec()
    } else {
        v.to_le_bytes()[..width].to_vec()
    };
    for (i, b) in bytes.into_iter().enumerate() {
        if let Some(slot) = buf.get_mut(at + i) {
            *slot = b;
        }
    }
}

fn get(buf: &[u8], at: usize, width: usize, big_endian: bool) -> Option<u64> {
    let s = buf.get(at..at.checked_add(width)?)?;
    let mut v = 0u64;
    if big_endian {
        for &b in s {
            v = v << 8 | u64::from(b);
        }
    } else {
        for &b in s.iter().rev() {
            v = v << 8 | u64::from(b);
        }
    }
    Some(v)
}

/// Apply one mutation to `data` and say what it did.
pub fn mutate(rng: &mut Rng, format: Format, data: &mut Vec<u8>) -> String {
    // Half of the edits know the format (when it has such edits), three quarters of a
    // record's (blind edits of JSON text mostly make it unparsable); the rest are blind.
    if rng.chance(
        if format == Format::Ndjson { 3 } else { 1 },
        if format == Format::Ndjson { 4 } else { 2 },
    ) {
        let aware = match format {
            Format::Tiff => tiff(rng, data),
            Format::Las => las(rng, data),
            Format::Fits => fits(rng, data),
            Format::Zip => zip(rng, data),
            Format::Pdf => pdf(rng, data),
            Format::Ndjson => ndjson(rng, data),
            Format::Png | Format::Jpeg => None,
        };
        if let Some(what) = aware {
            return what;
        }
    }
    generic(rng, data)
}

/// Blind byte edits.
fn generic(rng: &mut Rng, data: &mut Vec<u8>) -> String {
    let len = data.len();
    if len == 0 {
        let n = 1 + rng.below(64);
        data.extend((0..n).map(|_| rng.next() as u8));
        return format!("insert {n} random bytes into an empty file");
    }
    // Offsets near the start matter most (headers); half the edits land in the first 512.
    let at = |rng: &mut Rng| {
        if rng.chance(1, 2) {
            rng.below(len.min(512))
        } else {
            rng.below(len)
        }
    };
    match rng.below(6) {
        0 => {
            let n = 1 + rng.below(4);
            let mut offs = Vec::new();
            for _ in 0..n {
                let o = at(rng);
                let bit = rng.below(8);
                data[o] ^= 1 << bit;
                offs.push(format!("{o}.{bit}"));
            }
            format!("flip bits {}", offs.join(","))
        }
        1 => {
            let o = at(rng);
            let width = *rng.pick(&[1usize, 2, 4, 8]);
            let be = rng.chance(1, 2);
            let v = boundary(rng, len);
            put(data, o, width, v, be);
            format!(
                "write {v:#x} as u{} {} at {o}",
                width * 8,
                if be { "BE" } else { "LE" }
            )
        }
        2 => {
            let to = match rng.below(4) {
                0 => len - 1,
                1 => rng.below(len.min(512)),
                _ => rng.below(len),
            };
            data.truncate(to);
            format!("truncate {len} -> {to} bytes")
        }
        3 => {
            let o = at(rng);
            let n = (1 + rng.below(64)).min(len - o);
            data.drain(o..o + n);
            format!("delete {n} bytes at {o}")
        }
        4 => {
            let o = at(rng);
            let n = 1 + rng.below(256);
            let chunk: Vec<u8> = if rng.chance(1, 2) {
                (0..n).map(|_| rng.next() as u8).collect()
            } else {
                vec![*rng.pick(&[0u8, 0xFF]); n]
            };
            data.splice(o..o, chunk);
            format!("insert {n} bytes at {o}")
        }
        _ => {
            let from = rng.below(len);
            let n = (1 + rng.below(512)).min(len - from);
            let o = at(rng);
            let chunk = data[from..from + n].to_vec();
            data.splice(o..o, chunk);
            format!("duplicate {n} bytes from {from} at {o}")
        }
    }
}

/// An IFD entry of a TIFF: where its fields sit.
struct IfdEntry {
    at: usize,
    tag: u16,
    typ: u16,
    count: u64,
}

/// TIFF: edit an IFD entry's type, count or value (or an element of the array it points
/// to, e.g. one StripByteCounts), the IFD's entry count, or the next-IFD offset.
fn tiff(rng: &mut Rng, data: &mut [u8]) -> Option<String> {
    let be = match data.get(0..2)? {
        b"II" => false,
        b"MM" => true,
        _ => return None,
    };
    let big = get(data, 2, 2, be)? == 43;
    let (ofs_w, cnt_w, entry_w) = if big { (8, 8, 20) } else { (4, 2, 12) };
    let first = get(data, if big { 8 } else { 4 }, ofs_w, be)? as usize;
    let n = get(data, first, cnt_w, be)? as usize;
    if n == 0 || n > 1000 {
        return None;
    }
    let mut entries = Vec::new();
    for i in 0..n {
        let at = first + cnt_w + i * entry_w;
        let (Some(tag), Some(typ), Some(count)) = (
            get(data, at, 2, be),
            get(data, at + 2, 2, be),
            get(data, at + 4, ofs_w, be),
        ) else {
            break;
        };
        entries.push(IfdEntry {
            at,
            tag: tag as u16,
            typ: typ as u16,
            count,
        });
    }
    if entries.is_empty() {
        return None;
    }
    let next_at = first + cnt_w + n * entry_w;
    // Tags whose values size buffers or index the file come first.
    const HOT: &[u16] = &[
        256, 257, 258, 259, 262, 273, 277, 278, 279, 284, 317, 322, 323, 324, 325, 338, 339,
    ];
    let hot: Vec<usize> = (0..entries.len())
        .filter(|&i| HOT.contains(&entries[i].tag))
        .collect();
    let e = if !hot.is_empty() && rng.chance(3, 4) {
        &entries[*rng.pick(&hot)]
    } else {
        &entries[rng.below(entries.len())]
    };
    let len = data.len();
    let value_at = e.at + 4 + ofs_w;
    Some(match rng.below(7) {
        0 => {
            let t = rng.below(19) as u64;
            put(data, e.at + 2, 2, t, be);
            format!("TIFF tag {} type {} -> {t}", e.tag, e.typ)
        }
        1 => {
            let v = boundary(rng, len);
            put(data, e.at + 4, ofs_w, v, be);
            format!("TIFF tag {} count {} -> {v:#x}", e.tag, e.count)
        }
        2 | 3 => {
            // BitsPerSample gets the depths readers mishandle; others a boundary value.
            let v = if e.tag == 258 {
                *rng.pick(&[
                    0u64, 1, 2, 3, 4, 5, 6, 7, 9, 12, 15, 16, 17, 24, 32, 64, 255,
                ])
            } else {
                boundary(rng, len)
            };
            // A short (type 3) value sits in the first two bytes of the field.
            let w = if e.typ == 3 && e.count <= 2 { 2 } else { ofs_w };
            put(data, value_at, w, v, be);
            format!("TIFF tag {} value -> {v:#x}", e.tag)
        }
        4 => {
            // An element of an out-of-line array (offsets, byte counts, bits per sample).
            let elem = match e.typ {
                1 | 2 | 6 | 7 => 1,
                3 | 8 => 2,
                5 | 10 | 12 | 16..=18 => 8,
                _ => 4,
            };
            let inline = e.count.saturating_mul(elem as u64) <= ofs_w as u64;
            let base = if inline {
                value_at
            } else {
                get(data, value_at, ofs_w, be)? as usize
            };
            let i = rng.below(e.count.clamp(1, 1 << 20) as usize);
            let v = if e.tag == 258 {
                *rng.pick(&[0u64, 3, 5, 6, 7, 12, 17, 255])
            } else {
                boundary(rng, len)
            };
            put(data, base.saturating_add(i * elem), elem, v, be);
            format!("TIFF tag {} element {i} -> {v:#x}", e.tag)
        }
        5 => {
            let v = boundary(rng, 1000);
            put(data, first, cnt_w, v, be);
            format!("TIFF IFD entry count {n} -> {v:#x}")
        }
        _ => {
            // The next-IFD offset: pointing back at the first IFD makes a loop.
            let v = if rng.chance(1, 2) {
                first as u64
            } else {
                boundary(rng, len)
            };
            put(data, next_at, ofs_w, v, be);
            format!("TIFF next IFD offset -> {v:#x}")
        }
    })
}

/// LAS header fields: (name, offset, width, first version minor that has it).
const LAS_FIELDS: &[(&str, usize, usize, u8)] = &[
    ("version minor", 25, 1, 0),
    ("header size", 94, 2, 0),
    ("offset to point data", 96, 4, 0),
    ("number of VLRs", 100, 4, 0),
    ("point format", 104, 1, 0),
    ("point record length", 105, 2, 0),
    ("legacy point count", 107, 4, 0),
    ("legacy points by return 1", 111, 4, 0),
    ("x scale", 131, 8, 0),
    ("z offset", 171, 8, 0),
    ("max x", 179, 8, 0),
    ("min z", 219, 8, 0),
    ("start of waveform data", 227, 8, 3),
    ("start of first EVLR", 235, 8, 4),
    ("number of EVLRs", 243, 4, 4),
    ("point count", 247, 8, 4),
    ("points by return 1", 255, 8, 4),
];

/// LAS/LAZ: header fields, VLR/EVLR lengths, the laszip VLR's items and chunk size, the
/// LAZ chunk-table offset, or a point's return-number byte.
fn las(rng: &mut Rng, data: &mut [u8]) -> Option<String> {
    if data.get(0..4)? != b"LASF" {
        return None;
    }
    let len = data.len();
    let minor = *data.get(25)?;
    let header_size = get(data, 94, 2, false)? as usize;
    let offset_points = get(data, 96, 4, false)? as usize;
    let nvlr = get(data, 100, 4, false)? as usize;
    let record_len = get(data, 105, 2, false)? as usize;
    let format = *data.get(104)? & 0x3F;
    // The VLR headers (54 bytes, length at +20), walked as a reader would.
    let mut vlrs = Vec::new();
    let mut at = header_size;
    for _ in 0..nvlr.min(64) {
        let Some(l) = get(data, at + 20, 2, false) else {
            break;
        };
        let id = get(data, at + 18, 2, false).unwrap_or(0);
        vlrs.push((at, id));
        at += 54 + l as usize;
    }
    let float = |rng: &mut Rng| -> f64 {
        *rng.pick(&[
            0.0,
            -0.0,
            1e-300,
            1e300,
            f64::NAN,
            f64::INFINITY,
            -1.0,
            1e-9,
        ])
    };
    Some(match rng.below(6) {
        0 | 1 => {
            let fields: Vec<_> = LAS_FIELDS.iter().filter(|f| f.3 <= minor).collect();
            let &&(name, off, w, _) = rng.pick(&fields);
            if w == 8 && (131..227).contains(&off) {
                let v = float(rng);
                data.get_mut(off..off + 8)?
                    .copy_from_slice(&v.to_le_bytes());
                format!("LAS {name} -> {v}")
            } else {
                let v = match name {
                    "version minor" => rng.below(6) as u64,
                    "point format" => *rng.pick(&[0u64, 1, 3, 6, 7, 8, 10, 11, 0x80 | 3, 0xFF]),
                    _ => boundary(rng, len),
                };
                put(data, off, w, v, false);
                format!("LAS {name} -> {v:#x}")
            }
        }
        2 => {
            let &(vat, id) = vlrs.get(rng.below(vlrs.len().max(1)))?;
            let v = boundary(rng, len) & 0xFFFF;
            put(data, vat + 20, 2, v, false);
            format!("LAS VLR {id} at {vat}: length -> {v:#x}")
        }
        3 => {
            // The laszip VLR (record 22204): compressor, chunk size, item count and items.
            let &(vat, _) = vlrs.iter().find(|v| v.1 == 22204)?;
            let p = vat + 54;
            let (name, off, w) = *rng.pick(&[
                ("compressor", 0usize, 2usize),
                ("chunk size", 12, 4),
                ("item count", 32, 2),
                ("item 0 type", 34, 2),
                ("item 0 size", 36, 2),
                ("item 1 size", 42, 2),
            ]);
            let v = boundary(rng, len) & ((1u64 << (w * 8)) - 1);
            put(data, p + off, w, v, false);
            format!("laszip VLR {name} -> {v:#x}")
        }
        4 => {
            if minor >= 4 && rng.chance(1, 2) {
                // The first EVLR's length (u64 at +20 of its 60-byte header).
                let evlr = get(data, 235, 8, false)? as usize;
                let v = boundary(rng, len);
                put(data, evlr.checked_add(20)?, 8, v, false);
                format!("LAS EVLR length -> {v:#x}")
            } else {
                // LAZ: the chunk-table offset is the first 8 bytes of the point data.
                let v = boundary(rng, len);
                put(data, offset_points, 8, v, false);
                format!("LAZ chunk-table offset (at {offset_points}) -> {v:#x}")
            }
        }
        _ => {
            // A point's return byte (offset 14 in every format); meaningful in LAS only.
            let n = (len.saturating_sub(offset_points) / record_len.max(1)).max(1);
            let i = rng.below(n.min(1 << 20));
            let v = if format >= 6 {
                rng.next() & 0xFF
            } else {
                // Return number 6 or 7 of up to 7: valid bits, legal before LAS 1.4.
                let any = rng.next() & 0xFF;
                *rng.pick(&[0b0011_1110u64, 0b0011_1111, 0b0011_1110 | 0x40, any])
            };
            put(data, offset_points + i * record_len + 14, 1, v, false);
            format!("LAS point {i} return byte -> {v:#04x}")
        }
    })
}

/// FITS: a card's value (NAXISn, BITPIX, BZERO, BSCALE, PCOUNT, GCOUNT...), a deleted
/// END, or a duplicated card.
fn fits(rng: &mut Rng, data: &mut Vec<u8>) -> Option<String> {
    if !data.starts_with(b"SIMPLE  =") {
        return None;
    }
    // The cards of every header in the first 64 KiB (extensions included).
    let cards: Vec<usize> = (0..data.len().min(1 << 16) / 80)
        .map(|i| i * 80)
        .filter(|&at| {
            let key = &data[at..at + 8];
            key.starts_with(b"NAXIS")
                || key.starts_with(b"BITPIX")
                || key.starts_with(b"BZERO")
                || key.starts_with(b"BSCALE")
                || key.starts_with(b"PCOUNT")
                || key.starts_with(b"GCOUNT")
                || key.starts_with(b"ZNAXIS")
                || key.starts_with(b"ZBITPIX")
                || key.starts_with(b"END     ")
                || key.starts_with(b"XTENSION")
        })
        .collect();
    if cards.is_empty() {
        // An earlier edit of this case cut the header away.
        return None;
    }
    let at = *rng.pick(&cards);
    let key = String::from_utf8_lossy(&data[at..at + 8])
        .trim()
        .to_string();
    Some(match rng.below(8) {
        0 if key == "END" => {
            data[at..at + 3].copy_from_slice(b"   ");
            "FITS END card removed".into()
        }
        1 => {
            let card = data[at..at + 80].to_vec();
            data.splice(at..at, card);
            format!("FITS card {key} duplicated (header shifted by 80 bytes)")
        }
        _ if key == "END" || key == "XTENSION" => {
            let v = *rng.pick(&["", "NAXIS   = 9", "BITPIX  = 0"]);
            let mut card = format!("{v:<80}").into_bytes();
            card.truncate(80);
            data[at..at + 80].copy_from_slice(&card);
            format!("FITS {key} card -> {v:?}")
        }
        _ => {
            let v = *rng.pick(&[
                "0",
                "-1",
                "1",
                "3",
                "7",
                "8",
                "-32",
                "-64",
                "64",
                "999",
                "2147483647",
                "2147483648",
                "-2147483648",
                "99999999999999999999",
                "1E308",
                "1E-308",
                "NaN",
                "'text'",
                "T",
                "",
            ]);
            let card = format!("{key:<8}= {v:>20}");
            let mut card = format!("{card:<80}").into_bytes();
            card.truncate(80);
            data[at..at + 80].copy_from_slice(&card);
            format!("FITS {key} -> {v:?}")
        }
    })
}

/// A field of a ZIP record: name, offset, width.
type ZipField = (&'static str, usize, usize);

/// ZIP: sizes, name/extra lengths, methods and offsets of local headers, central
/// directory entries and the end record.
fn zip(rng: &mut Rng, data: &mut [u8]) -> Option<String> {
    let find = |sig: &[u8; 4]| -> Vec<usize> {
        data.windows(4)
            .enumerate()
            .filter(|(_, w)| w == sig)
            .map(|(i, _)| i)
            .collect()
    };
    let kinds: [(&str, Vec<usize>, &[ZipField]); 3] = [
        (
            "local header",
            find(b"PK\x03\x04"),
            &[
                ("method", 8, 2),
                ("compressed size", 18, 4),
                ("size", 22, 4),
                ("name length", 26, 2),
                ("extra length", 28, 2),
            ],
        ),
        (
            "central entry",
            find(b"PK\x01\x02"),
            &[
                ("method", 10, 2),
                ("compressed size", 20, 4),
                ("size", 24, 4),
                ("name length", 28, 2),
                ("extra length", 30, 2),
                ("comment length", 32, 2),
                ("local header offset", 42, 4),
            ],
        ),
        (
            "end record",
            find(b"PK\x05\x06"),
            &[
                ("entries on disk", 8, 2),
                ("entries", 10, 2),
                ("directory size", 12, 4),
                ("directory offset", 16, 4),
                ("comment length", 20, 2),
            ],
        ),
    ];
    let present: Vec<_> = kinds.iter().filter(|k| !k.1.is_empty()).collect();
    if present.is_empty() {
        return None;
    }
    let (kind, ats, fields) = *rng.pick(&present);
    let at = *rng.pick(ats);
    let &(name, off, w) = rng.pick(fields);
    let v = if name == "method" {
        *rng.pick(&[0u64, 1, 6, 8, 9, 12, 14, 93, 99, 0xFFFF])
    } else {
        boundary(rng, data.len()) & ((1u64 << (w * 8)) - 1)
    };
    put(data, at + off, w, v, false);
    Some(format!("ZIP {kind} at {at}: {name} -> {v:#x}"))
}

/// PDF: a number after `startxref`, `/Length`, `/Size`, `/Prev`, `/Count`, `/Width`,
/// `/Height`, `/BitsPerComponent`, or an xref entry's offset.
fn pdf(rng: &mut Rng, data: &mut Vec<u8>) -> Option<String> {
    if !data.starts_with(b"%PDF") {
        return None;
    }
    const KEYS: &[&[u8]] = &[
        b"startxref",
        b"/Length",
        b"/Size",
        b"/Prev",
        b"/Count",
        b"/Width",
        b"/Height",
        b"/BitsPerComponent",
        b"xref",
    ];
    // (where the number starts, its length, the key)
    let mut numbers = Vec::new();
    for key in KEYS {
        for i in data
            .windows(key.len())
            .enumerate()
            .filter(|(_, w)| w == key)
            .map(|(i, _)| i)
        {
            let mut s = i + key.len();
            while s < data.len() && data[s].is_ascii_whitespace() {
                s += 1;
            }
            let e = (s..data.len())
                .find(|&j| !data[j].is_ascii_digit())
                .unwrap_or(data.len());
            if e > s {
                numbers.push((s, e - s, String::from_utf8_lossy(key).into_owned()));
            }
        }
    }
    if numbers.is_empty() {
        return None;
    }
    let (s, n, key) = rng.pick(&numbers).clone();
    let v = if rng.chance(1, 4) {
        (*rng.pick(&["-1", "1e10", "0.5", "99999999999999999999999"])).to_string()
    } else {
        boundary(rng, data.len()).to_string()
    };
    // Same width when it fits, so the other offsets stay true and only this one lies.
    let text = if v.len() < n {
        format!("{v:0>n$}")
    } else {
        v.clone()
    };
    data.splice(s..s + n, text.into_bytes());
    Some(format!("PDF number after {key} at {s} -> {v}"))
}

/// Manifest records: a value replaced by a huge number, a wrong type, or removed; a
/// record duplicated or cut.
fn ndjson(rng: &mut Rng, data: &mut Vec<u8>) -> Option<String> {
    let text = std::str::from_utf8(data).ok()?;
    let mut record: serde_json::Value = serde_json::from_str(text.lines().next()?).ok()?;
    let mut leaves = Vec::new();
    collect_leaves(&record, String::new(), &mut leaves);
    if leaves.is_empty() {
        return None;
    }
    let what = match rng.below(5) {
        0 => {
            let line = text.lines().next()?.to_string();
            data.extend_from_slice(line.as_bytes());
            data.push(b'\n');
            return Some("manifest record duplicated".into());
        }
        1 => {
            let ptr = rng.pick(&leaves).clone();
            let (parent, key) = ptr.rsplit_once('/')?;
            match record.pointer_mut(parent) {
                Some(serde_json::Value::Object(m)) => {
                    m.shift_remove(key);
                }
                Some(serde_json::Value::Array(a)) => {
                    let i: usize = key.parse().ok()?;
                    if i < a.len() {
                        a.remove(i);
                    }
                }
                _ => return None,
            }
            format!("manifest {ptr} removed")
        }
        _ => {
            let ptr = rng.pick(&leaves).clone();
            let v: serde_json::Value = match rng.below(12) {
                0 => serde_json::json!(u64::MAX),
                1 => serde_json::json!(-1),
                2 => serde_json::json!(0),
                3 => serde_json::json!(1e308),
                4 => serde_json::json!(-1e308),
                5 => serde_json::json!(9007199254740993u64),
                6 => serde_json::json!(0.5),
                7 => serde_json::json!("x"),
                8 => serde_json::Value::Null,
                9 => serde_json::json!([]),
                10 => serde_json::json!({}),
                _ => serde_json::json!(true),
            };
            let s = v.to_string();
            *record.pointer_mut(&ptr)? = v;
            format!("manifest {ptr} -> {s}")
        }
    };
    let mut out = serde_json::to_vec(&record).ok()?;
    out.push(b'\n');
    *data = out;
    Some(what)
}

fn collect_leaves(v: &serde_json::Value, at: String, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                // The path is the case's own copy; breaking it only tests "not found".
                if at.is_empty() && k == "path" {
                    continue;
                }
                collect_leaves(
                    x,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                collect_leaves(x, format!("{at}/{i}"), out);
            }
        }
        _ => out.push(at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_mutants() {
        let seed: Vec<u8> = (0..4000u32).map(|i| (i * 7 % 251) as u8).collect();
        let run = |s| {
            let mut rng = Rng::new(s, "tool", 5);
            (0..50)
                .map(|_| {
                    let mut d = seed.clone();
                    let w = mutate(&mut rng, Format::Png, &mut d);
                    (w, d)
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }

    #[test]
    fn format_aware_edits_find_their_fields() {
        let mut rng = Rng::new(3, "t", 0);
        // A little-endian classic TIFF: 8-byte header, IFD at 8 with two entries.
        let mut t = b"II*\0\x08\0\0\0\x02\0".to_vec();
        t.extend_from_slice(&[0, 1, 3, 0, 1, 0, 0, 0, 64, 0, 0, 0]); // width 64
        t.extend_from_slice(&[2, 1, 3, 0, 1, 0, 0, 0, 8, 0, 0, 0]); // bits 8
        t.extend_from_slice(&[0; 4]);
        for _ in 0..20 {
            let mut d = t.clone();
            let what = tiff(&mut rng, &mut d).expect("a TIFF edit");
            assert!(what.starts_with("TIFF"), "{what}");
        }
        let mut rec = b"{\"path\":\"a\",\"estimate\":{\"x\":{\"min_bytes\":5}}}\n".to_vec();
        let what = ndjson(&mut rng, &mut rec).expect("a record edit");
        assert!(what.starts_with("manifest"), "{what}");
        assert!(String::from_utf8_lossy(&rec).contains("\"path\":\"a\""));
    }
}
