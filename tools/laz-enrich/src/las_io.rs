//! LAS/LAZ/COPC reading and the output header: every input VLR and EVLR kept except the
//! ones that describe the input's encoding (the laszip VLR, the COPC info VLR and
//! hierarchy EVLR: a header cloned from a reader keeps them, and a LAZ written with the
//! stale laszip VLR cannot be read back), and one Extra Bytes VLR describing the input's
//! extra bytes (every input Extra Bytes VLR and EVLR merged into the first, descriptors
//! kept in order, the others kept as Superseded records) followed by the new dimensions.
//! Kept records keep their header bytes too ([`restore_header`]).

use las::{Builder, Header, Reader, Vlr};
use membudget::probe::las::LasInfo;
use membudget::{Error, ErrorKind};
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

/// Bytes of one Extra Bytes descriptor (LAS 1.4 R15, table 24).
const EB_DESCRIPTOR: usize = 192;
/// LAS data type 9: a 4-byte IEEE float.
const EB_FLOAT: u8 = 9;

/// A las-crate error as a membudget error with the right kind.
pub fn las_error(path: &Path, e: las::Error) -> Error {
    let msg = format!("{}: {e}", path.display());
    match e {
        las::Error::Io(io) => {
            let kind = Error::from(io).kind;
            Error::new(kind, msg)
        }
        las::Error::LaszipNotEnabled | las::Error::UnsupportedFormat { .. } => {
            Error::new(ErrorKind::Unsupported, msg)
        }
        _ => Error::new(ErrorKind::Corrupt, msg),
    }
}

/// Check a LAS/LAZ/COPC file before the `las`/`laz` readers see it: they trust every
/// size in it (EVLR lengths, the chunk table, LASzip items and layer sizes) and panic
/// or allocate whatever it claims. `membudget`'s header probe checks each against the
/// file (see there); what it accepts, those readers can open within the file's size.
pub fn validate(path: &Path) -> Result<LasInfo, Error> {
    let mut file = File::open(path)?;
    check_magic(path, &file)?;
    use std::io::Seek;
    file.rewind()?;
    let len = file.metadata()?.len();
    let (_, info) = membudget::probe::las::read_info(&mut BufReader::new(file), len)
        .map_err(|e| Error::new(e.kind, format!("{}: {}", path.display(), e.message)))?;
    Ok(info)
}

/// The header the `las` reader keeps in memory (VLRs and whatever lies before the
/// points, and the EVLRs, read whole), several copies of it at once, must be a small
/// part of the budget: the cost model does not count it.
pub fn check_header_budget(path: &Path, info: &LasInfo, budget: u64) -> Result<(), Error> {
    let held =
        u64::from(info.offset_to_point_data) + info.evlrs.iter().map(|e| e.bytes + 60).sum::<u64>();
    if held.saturating_mul(16) > budget {
        return Err(Error::new(
            ErrorKind::Budget,
            format!(
                "{}: its VLRs and EVLRs ({held} bytes, read whole by the LAS reader) need more than a sixteenth of the {budget}-byte budget",
                path.display()
            ),
        ));
    }
    Ok(())
}

/// Whether the chunk-parallel LAZ decoder keeps to the cost model on this file: it
/// holds a whole chunk per thread, so chunks must be no larger than the model's
/// (and it needs a chunk table). Otherwise the streaming decoder reads it.
pub fn parallel_decode_fits(info: &LasInfo) -> bool {
    match &info.laz {
        None => true,
        Some(l) => {
            l.chunks.is_some()
                && l.compressor != 1
                && l.max_chunk_points <= membudget::cost::laz_features::LAZ_CHUNK_POINTS
        }
    }
}

fn check_magic(path: &Path, file: &File) -> Result<(), Error> {
    use std::io::Read;
    let mut head = [0u8; 4];
    let mut n = 0;
    while n < 4 {
        match (&*file).read(&mut head[n..])? {
            0 => break,
            k => n += k,
        }
    }
    if n < 4 || &head != b"LASF" {
        return Err(Error::unsupported(format!(
            "{}: not a LAS/LAZ file",
            path.display()
        )));
    }
    Ok(())
}

/// Open a LAS/LAZ/COPC file for sequential reading, with the parallel LAZ decoder
/// (whole chunks of 50,000 points decoded at once on every thread).
pub fn open(path: &Path) -> Result<Reader, Error> {
    open_with(path, true)
}

/// Open a LAS/LAZ/COPC file; `parallel` selects the chunk-parallel LAZ decoder, else
/// the streaming one (a few kilobytes of state: what small budgets need).
pub fn open_with(path: &Path, parallel: bool) -> Result<Reader, Error> {
    let file = File::open(path)?;
    check_magic(path, &file)?;
    use std::io::Seek;
    let mut file = file;
    file.rewind()?;
    let options = las::ReaderOptions::default().with_laz_parallelism(if parallel {
        las::LazParallelism::Yes
    } else {
        las::LazParallelism::No
    });
    Reader::with_options(BufReader::with_capacity(1 << 20, file), options)
        .map_err(|e| las_error(path, e))
}

/// `[x, y, z]` scales of a header.
pub fn scales(h: &Header) -> [f64; 3] {
    let t = h.transforms();
    [t.x.scale, t.y.scale, t.z.scale]
}

/// `[x, y, z]` offsets of a header.
pub fn offsets(h: &Header) -> [f64; 3] {
    let t = h.transforms();
    [t.x.offset, t.y.offset, t.z.offset]
}

fn is_extra_bytes(v: &Vlr) -> bool {
    v.user_id == "LASF_Spec" && v.record_id == 4
}

fn descriptor_size(data_type: u8, options: u8) -> Option<u16> {
    const BASE: [u16; 10] = [1, 1, 2, 2, 4, 4, 8, 8, 4, 8];
    match data_type {
        0 => Some(u16::from(options)),
        1..=10 => Some(BASE[usize::from(data_type - 1)]),
        11..=20 => Some(2 * BASE[usize::from(data_type - 11)]),
        21..=30 => Some(3 * BASE[usize::from(data_type - 21)]),
        _ => None,
    }
}

fn descriptor(data_type: u8, options: u8, name: &str, description: &str) -> [u8; EB_DESCRIPTOR] {
    let mut d = [0u8; EB_DESCRIPTOR];
    d[2] = data_type;
    d[3] = options;
    let n = name.as_bytes();
    d[4..4 + n.len().min(32)].copy_from_slice(&n[..n.len().min(32)]);
    let s = description.as_bytes();
    d[160..160 + s.len().min(32)].copy_from_slice(&s[..s.len().min(32)]);
    d
}

fn descriptor_name(d: &[u8]) -> String {
    let raw = &d[4..36];
    let end = raw.iter().position(|&b| b == 0).unwrap_or(32);
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

/// LASF_Spec record 7, "Superseded": a record that is no longer in use (R15, 4.5).
const SUPERSEDED: u16 = 7;

fn is_encoding(v: &Vlr) -> bool {
    las::laz::is_laszip_vlr(v) || v.is_copc_info() || v.is_copc_hierarchy()
}

/// `s` as the las writer accepts it (ASCII, at most `len` bytes): the raw bytes of every
/// kept record header are written back by [`restore_header`], so this only has to let
/// a Latin-1 or UTF-8 description through the writer.
fn ascii_fit(s: &str, len: usize) -> String {
    s.chars()
        .map(|c| if c.is_ascii() { c } else { '?' })
        .take(len)
        .collect()
}

/// The output header: the input's, minus the encoding VLRs, with one Extra Bytes VLR
/// describing the input's extra bytes then `dims` (name, description) as f32, and the
/// point format grown by 4 bytes a dimension.
///
/// Several Extra Bytes records (VLRs or EVLRs) are merged: LAS 1.4 R15 (section 4.3)
/// describes the extra bytes with one Extra Bytes VLR, and LAS 1.5 R00 says so outright
/// (ASPRS/LAS issue 150: new descriptors go in the existing one). Readers disagree on
/// more than one: laspy uses the first, LASlib re-initialises its attributes at each
/// (so keeps the last, at offset 0), PDAL 2.9 concatenates them but counts each one's
/// offsets from the start of the extra bytes again; none reads every dimension of the
/// second at its offset. So the first Extra Bytes VLR keeps its place and header and
/// holds every input descriptor, byte for byte and in order, then ours; every other
/// Extra Bytes record stays where it was, byte for byte but for its record ID, marked
/// Superseded (LASF_Spec 7, the specification's way to retire a record), which every
/// reader skips. When the first is an EVLR, the Extra Bytes VLR comes after the
/// other VLRs.
pub fn output_header(
    path: &Path,
    input: &Header,
    dims: &[(&str, &str)],
    compress: bool,
) -> Result<Header, Error> {
    let mut b = Builder::from(input.clone());
    let old_extra = b.point_format.extra_bytes;
    // Every descriptor of every Extra Bytes record, VLRs then EVLRs, in file order.
    let mut descriptors: Vec<u8> = Vec::new();
    let mut first_eb = None;
    let mut take = |v: &Vlr| -> Result<(), Error> {
        if !v.data.len().is_multiple_of(EB_DESCRIPTOR) {
            return Err(Error::corrupt(format!(
                "{}: Extra Bytes record of {} bytes is not a whole number of descriptors",
                path.display(),
                v.data.len()
            )));
        }
        descriptors.extend_from_slice(&v.data);
        Ok(())
    };
    let mut keep = |records: Vec<Vlr>, evlr: bool| -> Result<Vec<Vlr>, Error> {
        let mut kept = Vec::with_capacity(records.len());
        for mut v in records {
            if is_encoding(&v) {
                continue;
            }
            if is_extra_bytes(&v) {
                take(&v)?;
                if first_eb.is_none() {
                    first_eb = Some((if evlr { None } else { Some(kept.len()) }, v.clone()));
                    if !evlr {
                        // Its place, filled below.
                        kept.push(v);
                        continue;
                    }
                }
                v.record_id = SUPERSEDED;
            }
            v.user_id = ascii_fit(&v.user_id, 16);
            v.description = ascii_fit(&v.description, 32);
            kept.push(v);
        }
        Ok(kept)
    };
    let vlrs = std::mem::take(&mut b.vlrs);
    b.vlrs = keep(vlrs, false)?;
    // All of them: the las reader keeps only the first EVLR.
    b.evlrs = keep(read_evlrs(path)?, true)?;
    let mut described = 0u32;
    let mut names = Vec::new();
    for d in descriptors.chunks(EB_DESCRIPTOR) {
        let size = descriptor_size(d[2], d[3]).ok_or_else(|| {
            Error::corrupt(format!(
                "{}: Extra Bytes descriptor with unknown data type {}",
                path.display(),
                d[2]
            ))
        })?;
        described += u32::from(size);
        names.push(descriptor_name(d));
    }
    if described > u32::from(old_extra) {
        return Err(Error::corrupt(format!(
            "{}: Extra Bytes VLRs describe {described} bytes but points carry {old_extra}",
            path.display()
        )));
    }
    // Undocumented extra bytes (data type 0) before ours, so ours land at the right offset.
    let mut gap = u32::from(old_extra) - described;
    while gap > 0 {
        let n = gap.min(255) as u8;
        descriptors.extend_from_slice(&descriptor(0, n, "", "undocumented extra bytes"));
        gap -= u32::from(n);
    }
    for (name, desc) in dims {
        if names.iter().any(|n| n == name) {
            return Err(Error::unsupported(format!(
                "{}: already has an extra dimension named {name:?} (enriched twice?)",
                path.display()
            )));
        }
        descriptors.extend_from_slice(&descriptor(EB_FLOAT, 0, name, desc));
    }
    // Past 65,535 bytes (341 descriptors) the las writer would make it an EVLR, which
    // laspy does not read for the point format.
    if descriptors.len() > usize::from(u16::MAX) {
        return Err(Error::unsupported(format!(
            "{}: {} extra dimensions do not fit one Extra Bytes VLR (341 at most)",
            path.display(),
            descriptors.len() / EB_DESCRIPTOR
        )));
    }
    let added = u16::try_from(dims.len() * 4)
        .ok()
        .and_then(|a| old_extra.checked_add(a))
        .ok_or_else(|| Error::unsupported("too many extra bytes per point"))?;
    b.point_format.extra_bytes = added;
    b.point_format.is_compressed = compress;
    let eb = |description: &str| Vlr {
        user_id: "LASF_Spec".into(),
        record_id: 4,
        description: ascii_fit(description, 32),
        data: descriptors,
    };
    match first_eb {
        Some((Some(at), first)) => b.vlrs[at] = eb(&first.description),
        Some((None, first)) => b.vlrs.push(eb(&first.description)),
        None => b.vlrs.push(eb("Extra Bytes Record")),
    }
    b.into_header().map_err(|e| las_error(path, e))
}

/// Bytes of the input's public header copied into the output unchanged: file source
/// ID, global encoding and GUID (4..24), system identifier, generating software and
/// creation day and year (26..94). The las crate writes its own (a creation day of 0,
/// which IGN tiles carry, became a year of 0 too).
const KEPT_HEADER_BYTES: [std::ops::Range<u64>; 2] = [4..24, 26..94];

/// After the writer closed `out`: give it back the input's header fields of
/// [`KEPT_HEADER_BYTES`] and version, zero legacy counts where LAS 1.4 asks for it
/// and, when the input has points, the exact bounds of their
/// stored coordinates `lo..=hi` (`stored * scale + offset`, as laspy and LAStools
/// compute them; the las crate rounds each bound outwards through its own inverse,
/// which widened some by one quantum).
pub fn restore_header(
    input: &Path,
    out: &File,
    header: &Header,
    extent: Option<([i64; 3], [i64; 3])>,
) -> Result<(), Error> {
    use std::os::unix::fs::FileExt;
    let src = File::open(input)?;
    for r in KEPT_HEADER_BYTES {
        let mut buf = vec![0u8; (r.end - r.start) as usize];
        src.read_exact_at(&mut buf, r.start)?;
        out.write_all_at(&buf, r.start)?;
    }
    // Header bytes 0..107 of each: the version (24..26), header size (94..96) and point
    // format (104).
    let (mut a, mut b) = ([0u8; 107], [0u8; 107]);
    src.read_exact_at(&mut a, 0)?;
    out.read_exact_at(&mut b, 0)?;
    // The las crate writes 1.1 files as 1.2, whose header is the same bytes: the
    // input's version stays when the header size did.
    if a[94..96] == b[94..96] {
        out.write_all_at(&a[24..26], 24)?;
    }
    // LAS 1.4 point formats 6-10 must leave the legacy point counts zero (R15, 2.4).
    if b[24] == 1 && b[25] >= 4 && b[104] & 0x3F >= 6 {
        out.write_all_at(&[0u8; 24], 107)?;
    }
    restore_record_headers(input, &src, out)?;
    if let Some((lo, hi)) = extent {
        let (scale, off) = (scales(header), offsets(header));
        let world = |a: usize, v: i64| v as f64 * scale[a] + off[a];
        // max x, min x, max y, min y, max z, min z: six f64 from byte 179.
        let mut buf = Vec::with_capacity(48);
        for a in 0..3 {
            buf.extend_from_slice(&world(a, hi[a]).to_le_bytes());
            buf.extend_from_slice(&world(a, lo[a]).to_le_bytes());
        }
        out.write_all_at(&buf, 179)?;
    }
    Ok(())
}

/// Header byte of the "start of waveform data packet record" (u64, LAS 1.3 and later).
const WAVEFORM_START: u64 = 227;

/// Where the input's header says its waveform data packet record starts, if it says so
/// (a LAS 1.3+ header, a non-zero value).
fn waveform_start(f: &File) -> Result<Option<u64>, Error> {
    use std::os::unix::fs::FileExt;
    let mut h = [0u8; 235];
    let n = f.read_at(&mut h, 0)?;
    if n < 235 || u16::from_le_bytes([h[94], h[95]]) < 235 {
        return Ok(None);
    }
    let at = u64::from_le_bytes(h[227..235].try_into().unwrap());
    Ok((at != 0).then_some(at))
}

/// One VLR or EVLR header as stored: where it starts, its user ID bytes, record ID and
/// payload length.
struct RawRecord {
    at: u64,
    user_id: [u8; 16],
    record_id: u16,
    len: u64,
}

impl RawRecord {
    fn user(&self) -> &[u8] {
        let end = self.user_id.iter().position(|&b| b == 0).unwrap_or(16);
        &self.user_id[..end]
    }

    /// The laszip VLR and the COPC info and hierarchy records: what the output drops.
    fn is_encoding(&self) -> bool {
        (self.user() == b"laszip encoded" && self.record_id == 22204)
            || (self.user() == b"copc" && matches!(self.record_id, 1 | 1000))
    }
}

/// The VLR (`extended` false) or EVLR headers of a LAS file, checked against its length.
fn raw_records(f: &File, extended: bool) -> std::io::Result<Vec<RawRecord>> {
    use std::os::unix::fs::FileExt;
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let file_len = f.metadata()?.len();
    let mut h = [0u8; 247];
    let n = f.read_at(&mut h, 0)?;
    let (mut at, count, head) = if extended {
        if n < 247 || h[24] != 1 || h[25] < 4 || u16::from_le_bytes([h[94], h[95]]) < 375 {
            return Ok(Vec::new());
        }
        let at = u64::from_le_bytes(h[235..243].try_into().unwrap());
        let count = u32::from_le_bytes(h[243..247].try_into().unwrap());
        (at, count, 60u64)
    } else {
        if n < 104 {
            return Err(bad("short LAS header"));
        }
        let at = u64::from(u16::from_le_bytes([h[94], h[95]]));
        (at, u32::from_le_bytes(h[100..104].try_into().unwrap()), 54)
    };
    let mut records = Vec::new();
    for _ in 0..count {
        let mut r = [0u8; 28];
        if at.checked_add(head).is_none_or(|end| end > file_len) {
            return Err(bad("a VLR or EVLR runs past the end of the file"));
        }
        f.read_exact_at(&mut r, at)?;
        let len = if extended {
            u64::from_le_bytes(r[20..28].try_into().unwrap())
        } else {
            u64::from(u16::from_le_bytes([r[20], r[21]]))
        };
        if len > file_len - at - head {
            return Err(bad("a VLR or EVLR runs past the end of the file"));
        }
        records.push(RawRecord {
            at,
            user_id: r[2..18].try_into().unwrap(),
            record_id: u16::from_le_bytes([r[18], r[19]]),
            len,
        });
        at = at
            .checked_add(head + len)
            .ok_or_else(|| bad("VLR length overflows"))?;
    }
    Ok(records)
}

/// Every EVLR of `path` (the las reader keeps only the first), payloads read whole:
/// [`check_header_budget`] counted them.
fn read_evlrs(path: &Path) -> Result<Vec<Vlr>, Error> {
    use std::os::unix::fs::FileExt;
    let f = File::open(path)?;
    let text = |b: &[u8]| {
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        String::from_utf8_lossy(&b[..end]).into_owned()
    };
    let mut evlrs = Vec::new();
    for r in raw_records(&f, true)? {
        let mut head = [0u8; 60];
        f.read_exact_at(&mut head, r.at)?;
        let len = usize::try_from(r.len).map_err(|_| Error::hostile("EVLR too large"))?;
        let mut data = vec![0u8; len];
        f.read_exact_at(&mut data, r.at + 60)?;
        evlrs.push(Vlr {
            user_id: text(&head[2..18]),
            record_id: r.record_id,
            description: text(&head[28..60]),
            data,
        });
    }
    Ok(evlrs)
}

/// Give every VLR and EVLR the output kept its input header bytes back: reserved field,
/// user ID and description, which the las writer rebuilds (reserved 0, text cut at the
/// first NUL, non-ASCII refused). Record IDs and lengths stay the output's (an Extra
/// Bytes VLR grew, the others are Superseded: see [`output_header`]); payloads were
/// copied already. The output's records are the input's in order, less the encoding
/// ones, plus the laszip VLR of a LAZ output and the Extra Bytes VLR appended after the
/// others when the input had none.
///
/// The header's "start of waveform data packet record" (LAS 1.3+, byte 227), which the
/// las writer leaves 0, is pointed at the output's copy of the EVLR it pointed at in the
/// input: without it, internal waveform data (global encoding bit 1) would be kept but
/// unreachable. The points' waveform offsets count from that record, so they still hold.
fn restore_record_headers(input: &Path, src: &File, out: &File) -> Result<(), Error> {
    use std::os::unix::fs::FileExt;
    let waveform_at = waveform_start(src)?;
    for extended in [false, true] {
        let head = if extended { 60 } else { 54 };
        let from = raw_records(src, extended)?;
        let to = raw_records(out, extended)?;
        let from = from.iter().filter(|r| !r.is_encoding());
        let to = to.iter().filter(|r| !r.is_encoding());
        for (a, b) in from.zip(to) {
            if extended && Some(a.at) == waveform_at {
                out.write_all_at(&b.at.to_le_bytes(), WAVEFORM_START)?;
            }
            let eb = a.user() == b"LASF_Spec" && a.record_id == 4;
            let same = b.record_id == a.record_id && b.len == a.len
                || eb && b.record_id == 4 && b.len >= a.len
                || eb && b.record_id == SUPERSEDED && b.len == a.len;
            if !same {
                return Err(Error::new(
                    ErrorKind::Internal,
                    format!(
                        "{}: output record {} ({} bytes) does not match input record {} ({} bytes)",
                        input.display(),
                        b.record_id,
                        b.len,
                        a.record_id,
                        a.len
                    ),
                ));
            }
            let mut h = vec![0u8; head];
            src.read_exact_at(&mut h, a.at)?;
            out.write_all_at(&h[..18], b.at)?;
            out.write_all_at(&h[head - 32..], b.at + head as u64 - 32)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_sizes() {
        assert_eq!(descriptor_size(0, 7), Some(7));
        assert_eq!(descriptor_size(9, 0), Some(4));
        assert_eq!(descriptor_size(3, 0), Some(2));
        assert_eq!(descriptor_size(13, 0), Some(4));
        assert_eq!(descriptor_size(30, 0), Some(24));
        assert_eq!(descriptor_size(31, 0), None);
        let d = descriptor(EB_FLOAT, 0, "planarity", "(l2 - l3) / l1");
        assert_eq!(descriptor_name(&d), "planarity");
        assert_eq!(d[2], 9);
    }

    #[test]
    fn texts_fit_the_writer() {
        assert_eq!(ascii_fit("Hauteur m\u{e9}diane", 32), "Hauteur m?diane");
        assert_eq!(ascii_fit("\u{fffd}\u{fffd}\u{fffd}", 2), "??");
        assert_eq!(ascii_fit("LASF_Spec", 16), "LASF_Spec");
    }
}
