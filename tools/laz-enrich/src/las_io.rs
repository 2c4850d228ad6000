//! LAS/LAZ/COPC reading and the output header: every input VLR and EVLR kept except the
//! ones that describe the input's encoding (the laszip VLR, the COPC info VLR and
//! hierarchy EVLR: a header cloned from a reader keeps them, and a LAZ written with the
//! stale laszip VLR cannot be read back), and one Extra Bytes VLR describing the input's
//! extra bytes (every input Extra Bytes VLR and EVLR merged, descriptors kept in order)
//! followed by the new dimensions.

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

/// The output header: the input's, minus the encoding VLRs, with one Extra Bytes VLR
/// describing the input's extra bytes then `dims` (name, description) as f32, and the
/// point format grown by 4 bytes a dimension.
pub fn output_header(
    path: &Path,
    input: &Header,
    dims: &[(&str, &str)],
    compress: bool,
) -> Result<Header, Error> {
    let mut b = Builder::from(input.clone());
    let old_extra = b.point_format.extra_bytes;
    // Every descriptor of every Extra Bytes record, VLRs then EVLRs, in file order. LAS
    // 1.4 R15 (section 4, "Extra Bytes") defines one Extra Bytes VLR whose descriptors
    // describe the extra bytes in order; some writers split them over several records,
    // and readers then disagree (laspy and PDAL's readers.las read the first record 4,
    // LASlib re-initialises its attributes at each one, so keeps the last), each seeing
    // part of the bytes as undocumented or at the wrong offset. They are merged into one
    // VLR: each input descriptor kept byte for byte, in order, then ours, so every
    // reader finds every dimension at its offset.
    let mut descriptors: Vec<u8> = Vec::new();
    let mut first_eb = None;
    let mut kept = Vec::with_capacity(b.vlrs.len());
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
    for v in b.vlrs.drain(..) {
        if las::laz::is_laszip_vlr(&v) || v.is_copc_info() {
            continue;
        }
        if is_extra_bytes(&v) {
            take(&v)?;
            if first_eb.is_none() {
                first_eb = Some((kept.len(), v.description.clone()));
            }
            continue;
        }
        kept.push(v);
    }
    b.vlrs = kept;
    let mut evlrs = Vec::with_capacity(b.evlrs.len());
    for v in b.evlrs.drain(..) {
        if v.is_copc_hierarchy() || v.is_copc_info() {
            continue;
        }
        if is_extra_bytes(&v) {
            take(&v)?;
            if first_eb.is_none() {
                first_eb = Some((usize::MAX, v.description.clone()));
            }
            continue;
        }
        evlrs.push(v);
    }
    b.evlrs = evlrs;
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
    let added = u16::try_from(dims.len() * 4)
        .ok()
        .and_then(|a| old_extra.checked_add(a))
        .ok_or_else(|| Error::unsupported("too many extra bytes per point"))?;
    b.point_format.extra_bytes = added;
    b.point_format.is_compressed = compress;
    // In the first one's place (after the VLRs when it was an EVLR), under its
    // description: a single input Extra Bytes VLR is kept byte for byte, the new
    // descriptors appended.
    let (at, description) = first_eb.unwrap_or((b.vlrs.len(), "Extra Bytes Record".into()));
    let eb = Vlr {
        user_id: "LASF_Spec".into(),
        record_id: 4,
        description,
        data: descriptors,
    };
    let at = at.min(b.vlrs.len());
    b.vlrs.insert(at, eb);
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
}
