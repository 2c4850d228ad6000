//! LAS, LAZ and COPC probe: the public header and the VLR/EVLR directory, never points.
//!
//! The public header block is read with the `las` crate (`las::raw::Header::read_from`,
//! which reads exactly that block for every version 1.0-1.4). The rest is walked here
//! rather than through `las::Reader::from_path`, because on open that reader does more
//! than a probe may: it reads every byte between the VLRs and the first point into memory
//! (up to 4 GiB for a hostile `offset_to_point_data`), allocates the first EVLR at the
//! size its header claims (a u64, so a hostile file aborts the process), loads the COPC
//! hierarchy EVLR whole, and for LAZ builds the decompressor and reads the chunk table.
//! Here each VLR/EVLR header (54/60 bytes) is read and its payload is loaded only when the
//! probe needs it (Extra Bytes, COPC info, LASzip, WKT) and is small; everything else is
//! skipped by seeking. Counts and sizes are checked against the file length.
//!
//! For LAZ the LASzip VLR and the chunk table are checked too, as the `laz` crate would
//! use them (it trusts both: an item list that disagrees with the record length, an
//! empty one, a chunk count or a chunk's point count read from a damaged file panic or
//! size buffers of gigabytes), so a tool that probes a file first can hand it to the
//! `las`/`laz` readers knowing every size they will allocate by is bounded by the file.

use super::{Detail, Format, PointsSummary, Probe};
use crate::error::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// VLRs (or EVLRs) walked at most; a longer directory is treated as hostile.
pub const MAX_VLRS: u32 = 65_536;
/// Largest EVLR payload read into memory (WKT, Extra Bytes); bigger ones are skipped.
const MAX_EVLR_READ: u64 = 1 << 20;
/// Bytes of one Extra Bytes descriptor (LAS 1.4 R15, table 24).
const EB_DESCRIPTOR: usize = 192;

/// A LAS/LAZ/COPC header, its VLR directory and what it says about the points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LasInfo {
    /// LAS version, e.g. `"1.4"`.
    pub version: String,
    /// Point data record format (0-10), without the LASzip compression bits.
    pub point_format: u8,
    /// Number of point records (the 64-bit field for LAS 1.4).
    pub point_count: u64,
    /// Bytes of one point record, extra bytes included.
    pub record_length: u16,
    /// Bytes per record beyond the point format's standard fields.
    pub extra_bytes_length: u16,
    /// `[min_x, min_y, min_z]`.
    pub min: [f64; 3],
    /// `[max_x, max_y, max_z]`.
    pub max: [f64; 3],
    /// Scale factors `[x, y, z]`.
    pub scale: [f64; 3],
    /// Offsets `[x, y, z]`.
    pub offset: [f64; 3],
    /// Extra dimensions described by the Extra Bytes VLR(s), in VLR order.
    pub extra_bytes: Vec<ExtraBytesField>,
    /// How many Extra Bytes VLRs the file has (more than one is malformed but seen).
    pub extra_bytes_vlrs: u32,
    /// Where the CRS is stored: `"wkt"` (OGC WKT VLR/EVLR) and/or `"geotiff"` (GeoKey
    /// directory); empty when there is none.
    pub crs: Vec<String>,
    /// Points are LASzip-compressed (LASzip VLR or compressed point format bits).
    pub compressed: bool,
    /// A COPC info VLR (`copc`, record 1) is present.
    pub copc: bool,
    /// Offset of the first point record (LAS) or of the chunk table pointer (LAZ).
    pub offset_to_point_data: u32,
    /// `system_identifier` of the header.
    pub system_identifier: String,
    /// `generating_software` of the header.
    pub generating_software: String,
    /// The VLR directory.
    pub vlrs: Vec<VlrEntry>,
    /// The EVLR directory (LAS 1.4).
    pub evlrs: Vec<VlrEntry>,
    /// LASzip layout of compressed points (not part of the record: for tools that
    /// decode the points and size their buffers).
    #[serde(skip)]
    pub laz: Option<LazLayout>,
}

/// How a LAZ file's points are laid out, from its LASzip VLR and chunk table, checked
/// against the file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LazLayout {
    /// LASzip compressor: 1 point-wise (one stream), 2 point-wise chunked, 3 layered
    /// chunked.
    pub compressor: u16,
    /// Points per chunk, `None` for variable-size chunks (COPC).
    pub chunk_size: Option<u32>,
    /// Chunks in the chunk table; `None` when there is no table (compressor 1, or a
    /// writer that could not write one): only the streaming decoder reads such files.
    pub chunks: Option<u64>,
    /// The most points one chunk may hold, which is what the chunk-parallel decoder
    /// sizes its buffers by (the fixed chunk size, or the largest table entry).
    pub max_chunk_points: u64,
}

/// One VLR or EVLR header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VlrEntry {
    /// `user_id`.
    pub user_id: String,
    /// `record_id`.
    pub record_id: u16,
    /// Payload bytes.
    pub bytes: u64,
    /// `description`.
    pub description: String,
}

/// One extra dimension from an Extra Bytes descriptor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtraBytesField {
    /// Dimension name.
    pub name: String,
    /// Element type: `u8`..`f64`, or `"undocumented"` (raw bytes).
    #[serde(rename = "type")]
    pub data_type: String,
    /// Elements per point (1, or 2/3 for the deprecated array types).
    pub elements: u8,
    /// Bytes per point.
    pub bytes: u32,
    /// Which Extra Bytes VLR it came from (0 for the first).
    pub vlr: u32,
}

/// Decodes a fixed-size, NUL-padded ASCII field.
fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).trim_end().to_string()
}

fn map_las_error(e: las::Error) -> Error {
    match e {
        las::Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            Error::corrupt("LAS file truncated inside its public header")
        }
        las::Error::Io(io) => io.into(),
        las::Error::InvalidPointFormatNumber(n) => {
            Error::unsupported(format!("LAS point data record format {n} is not supported"))
        }
        other => Error::corrupt(format!("LAS header: {other}")),
    }
}

/// The element type and size of an Extra Bytes `data_type` (LAS 1.4 R15, table 25).
fn eb_type(data_type: u8, options: u8) -> Option<(&'static str, u8, u32)> {
    const TYPES: [(&str, u32); 10] = [
        ("u8", 1),
        ("i8", 1),
        ("u16", 2),
        ("i16", 2),
        ("u32", 4),
        ("i32", 4),
        ("u64", 8),
        ("i64", 8),
        ("f32", 4),
        ("f64", 8),
    ];
    match data_type {
        // Undocumented extra bytes: `options` holds the byte count.
        0 => Some(("undocumented", 1, u32::from(options))),
        1..=30 => {
            let elements = (data_type - 1) / 10 + 1;
            let (name, size) = TYPES[usize::from((data_type - 1) % 10)];
            Some((name, elements, size * u32::from(elements)))
        }
        _ => None,
    }
}

fn parse_extra_bytes(data: &[u8], vlr: u32, out: &mut Vec<ExtraBytesField>) -> Result<()> {
    if !data.len().is_multiple_of(EB_DESCRIPTOR) {
        return Err(Error::corrupt(format!(
            "Extra Bytes VLR of {} bytes is not a whole number of 192-byte descriptors",
            data.len()
        )));
    }
    for d in data.chunks_exact(EB_DESCRIPTOR) {
        let (data_type, options) = (d[2], d[3]);
        let name = cstr(&d[4..36]);
        let (ty, elements, bytes) = eb_type(data_type, options).ok_or_else(|| {
            Error::corrupt(format!(
                "Extra Bytes field {name:?} has unknown data type {data_type}"
            ))
        })?;
        out.push(ExtraBytesField {
            name,
            data_type: ty.to_string(),
            elements,
            bytes,
            vlr,
        });
    }
    Ok(())
}

/// What the walk over the VLRs collected.
#[derive(Default)]
struct Found {
    extra_bytes: Vec<ExtraBytesField>,
    extra_bytes_vlrs: u32,
    wkt: bool,
    geotiff: bool,
    laszip: bool,
    laszip_vlr: Option<Vec<u8>>,
    copc: bool,
}

impl Found {
    /// Notes what one (E)VLR says; `payload` reads its data when the probe needs it.
    fn note(
        &mut self,
        entry: &VlrEntry,
        payload: impl FnOnce() -> Result<Option<Vec<u8>>>,
    ) -> Result<()> {
        match (entry.user_id.as_str(), entry.record_id) {
            ("LASF_Spec", 4) => {
                if let Some(data) = payload()? {
                    parse_extra_bytes(&data, self.extra_bytes_vlrs, &mut self.extra_bytes)?;
                }
                self.extra_bytes_vlrs += 1;
            }
            ("LASF_Projection", 2112) => self.wkt = true,
            ("LASF_Projection", 34735) => self.geotiff = true,
            ("laszip encoded", 22204) => {
                self.laszip = true;
                // The first one, as the las crate takes it.
                if self.laszip_vlr.is_none() {
                    self.laszip_vlr = payload()?;
                }
            }
            ("copc", 1) => self.copc = true,
            _ => {}
        }
        Ok(())
    }
}

/// Reads one VLR (`extended` = EVLR) header at the current position.
fn read_vlr_header(r: &mut impl Read, extended: bool) -> Result<VlrEntry> {
    let mut buf = [0u8; 60];
    let n = if extended { 60 } else { 54 };
    r.read_exact(&mut buf[..n]).map_err(|_| {
        Error::corrupt(format!(
            "LAS file truncated inside a{} header",
            if extended { "n EVLR" } else { " VLR" }
        ))
    })?;
    let user_id = cstr(&buf[2..18]);
    let record_id = u16::from_le_bytes([buf[18], buf[19]]);
    let (bytes, desc) = if extended {
        let mut len = [0u8; 8];
        len.copy_from_slice(&buf[20..28]);
        (u64::from_le_bytes(len), &buf[28..60])
    } else {
        (
            u64::from(u16::from_le_bytes([buf[20], buf[21]])),
            &buf[22..54],
        )
    };
    Ok(VlrEntry {
        user_id,
        record_id,
        bytes,
        description: cstr(desc),
    })
}

/// Probe a LAS, LAZ or COPC file.
pub fn probe(path: &Path) -> Result<Probe> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut r = BufReader::new(file);
    let (format, info) = read_info(&mut r, len)?;
    let points = PointsSummary {
        count: info.point_count,
        record_bytes: u32::from(info.record_length),
        bounds: [
            info.min[0],
            info.min[1],
            info.min[2],
            info.max[0],
            info.max[1],
            info.max[2],
        ],
        compressed: info.compressed,
    };
    Ok(Probe {
        format,
        bytes: len,
        image: None,
        points: Some(points),
        archive: None,
        document: None,
        detail: Detail::Las(info),
    })
}

/// Reads the header and (E)VLR directory of a LAS/LAZ file of `len` bytes.
pub fn read_info<R: Read + Seek>(r: &mut R, len: u64) -> Result<(Format, LasInfo)> {
    let h = las::raw::Header::read_from(&mut *r).map_err(map_las_error)?;
    let (major, minor) = (h.version.major, h.version.minor);
    if major != 1 || minor > 4 {
        return Err(Error::unsupported(format!(
            "LAS version {major}.{minor} is not supported"
        )));
    }
    // The public header is at least as long as its version defines (LAS 1.0-1.2: 227
    // bytes, 1.3: 235, 1.4: 375); a shorter size (0) would put the VLRs inside it.
    let min_header = match minor {
        0..=2 => 227,
        3 => 235,
        _ => 375,
    };
    if h.header_size < min_header {
        return Err(Error::corrupt(format!(
            "LAS {major}.{minor} header size {} is below the {min_header} bytes the version defines",
            h.header_size
        )));
    }
    if u64::from(h.header_size) > u64::from(h.offset_to_point_data) {
        return Err(Error::corrupt(format!(
            "LAS header size {} runs past the start of the point data ({})",
            h.header_size, h.offset_to_point_data
        )));
    }
    let point_format =
        las::point::Format::new(h.point_data_record_format).map_err(map_las_error)?;
    // Bits 7 (and 6) of the format id mark LASzip compression; the id proper is the rest.
    let format_id = h.point_data_record_format & 0x3F;
    if format_id > 10 {
        return Err(Error::unsupported(format!(
            "LAS point data record format {format_id} is not supported"
        )));
    }
    // The las crate reads the VLRs from `header_size` on: a header size below the
    // version's own (0 in damaged files) makes it parse the header as VLRs.
    let min_header = las::Version::new(major, minor).header_size();
    if h.header_size < min_header || u32::from(h.header_size) > h.offset_to_point_data {
        return Err(Error::corrupt(format!(
            "LAS header size {} is outside {min_header}..={} (version {major}.{minor}, points at {})",
            h.header_size, h.offset_to_point_data, h.offset_to_point_data
        )));
    }
    let scale = [h.x_scale_factor, h.y_scale_factor, h.z_scale_factor];
    let offset = [h.x_offset, h.y_offset, h.z_offset];
    // Subnormal scales (a damaged exponent) overflow every distance computed from them.
    if !scale.iter().all(|s| s.is_normal() && *s > 0.0) || !offset.iter().all(|o| o.is_finite()) {
        return Err(Error::corrupt(format!(
            "LAS coordinate scales {scale:?} or offsets {offset:?} are not usable"
        )));
    }
    let base_len = point_format.len();
    if h.point_data_record_length < base_len {
        return Err(Error::corrupt(format!(
            "LAS point record length {} is shorter than format {format_id} needs ({base_len})",
            h.point_data_record_length
        )));
    }
    let point_count = match h.large_file {
        Some(lf) if lf.number_of_point_records != 0 => lf.number_of_point_records,
        _ => u64::from(h.number_of_point_records),
    };
    if h.number_of_variable_length_records > MAX_VLRS {
        return Err(Error::hostile(format!(
            "LAS header claims {} VLRs (at most {MAX_VLRS} are read)",
            h.number_of_variable_length_records
        )));
    }
    let offset_to_points = u64::from(h.offset_to_point_data);
    if offset_to_points > len {
        return Err(Error::corrupt(format!(
            "LAS point data starts at {offset_to_points}, past the end of the {len}-byte file"
        )));
    }

    let mut found = Found::default();
    let mut vlrs = Vec::new();
    let mut pos = u64::from(h.header_size);
    r.seek(SeekFrom::Start(pos))?;
    for _ in 0..h.number_of_variable_length_records {
        let entry = read_vlr_header(r, false)?;
        let data_start = pos + 54;
        pos = data_start + entry.bytes;
        if pos > offset_to_points {
            return Err(Error::corrupt(
                "LAS VLRs run past the start of the point data",
            ));
        }
        found.note(&entry, || {
            // A VLR payload is at most 65,535 bytes (u16 length): always safe to load.
            let mut data = vec![0u8; entry.bytes as usize];
            r.read_exact(&mut data)
                .map_err(|_| Error::corrupt("LAS file truncated inside a VLR"))?;
            Ok(Some(data))
        })?;
        r.seek(SeekFrom::Start(pos))?;
        vlrs.push(entry);
    }

    let mut evlrs = Vec::new();
    if let Some(e) = h.evlr.filter(|e| e.number_of_evlrs > 0) {
        if e.number_of_evlrs > MAX_VLRS {
            return Err(Error::hostile(format!(
                "LAS header claims {} EVLRs (at most {MAX_VLRS} are read)",
                e.number_of_evlrs
            )));
        }
        let mut pos = e.start_of_first_evlr;
        for _ in 0..e.number_of_evlrs {
            if pos.checked_add(60).is_none_or(|end| end > len) {
                return Err(Error::corrupt(format!(
                    "LAS EVLR at offset {pos} lies past the end of the {len}-byte file"
                )));
            }
            r.seek(SeekFrom::Start(pos))?;
            let entry = read_vlr_header(r, true)?;
            let data_start = pos + 60;
            pos = data_start
                .checked_add(entry.bytes)
                .filter(|&end| end <= len)
                .ok_or_else(|| {
                    Error::corrupt(format!(
                        "LAS EVLR {}/{} claims {} bytes, past the end of the file",
                        entry.user_id, entry.record_id, entry.bytes
                    ))
                })?;
            found.note(&entry, || {
                if entry.bytes > MAX_EVLR_READ {
                    return Ok(None);
                }
                let mut data = vec![0u8; entry.bytes as usize];
                r.read_exact(&mut data)?;
                Ok(Some(data))
            })?;
            evlrs.push(entry);
        }
    }

    let compressed = found.laszip || point_format.is_compressed;
    let mut laz = None;
    if point_format.is_compressed {
        // What the las crate decompresses with: the LASzip VLR and the chunk table.
        let vlr = found
            .laszip_vlr
            .as_deref()
            .ok_or_else(|| Error::corrupt("LAZ point format without a LASzip VLR to decode it"))?;
        let vlr = check_laszip_vlr(vlr, h.point_data_record_length)?;
        laz = Some(check_laz_chunk_table(
            r,
            &vlr,
            offset_to_points,
            len,
            point_count,
            h.point_data_record_length,
        )?);
    } else if compressed {
        // A LASzip VLR on points the las crate reads uncompressed: only the old check.
        check_chunk_table_offset(r, offset_to_points, len)?;
    } else {
        let data_bytes = point_count.checked_mul(u64::from(h.point_data_record_length));
        if data_bytes
            .and_then(|b| b.checked_add(offset_to_points))
            .is_none_or(|end| end > len)
        {
            return Err(Error::corrupt(format!(
                "LAS file truncated: {point_count} points of {} bytes do not fit in {len} bytes",
                h.point_data_record_length
            )));
        }
    }
    // The global encoding bit 4 also says "CRS is WKT", but only a WKT record holds one.
    let mut crs = Vec::new();
    if found.wkt {
        crs.push("wkt".to_string());
    }
    if found.geotiff {
        crs.push("geotiff".to_string());
    }
    let format = match (found.copc, compressed) {
        (true, true) => Format::Copc,
        (true, false) => {
            return Err(Error::corrupt(
                "COPC info VLR present but the points are not LASzip-compressed",
            ))
        }
        (false, true) => Format::Laz,
        (false, false) => Format::Las,
    };
    let info = LasInfo {
        version: format!("{major}.{minor}"),
        point_format: format_id,
        point_count,
        record_length: h.point_data_record_length,
        extra_bytes_length: h.point_data_record_length - base_len,
        min: [h.min_x, h.min_y, h.min_z],
        max: [h.max_x, h.max_y, h.max_z],
        scale: [h.x_scale_factor, h.y_scale_factor, h.z_scale_factor],
        offset: [h.x_offset, h.y_offset, h.z_offset],
        extra_bytes: found.extra_bytes,
        extra_bytes_vlrs: found.extra_bytes_vlrs,
        crs,
        compressed,
        copc: found.copc,
        offset_to_point_data: h.offset_to_point_data,
        system_identifier: cstr(&h.system_identifier),
        generating_software: cstr(&h.generating_software),
        vlrs,
        evlrs,
        laz,
    };
    Ok((format, info))
}

/// LAZ point data starts with the offset of the chunk table, which LASzip writes last: a
/// pointer past the end of the file means the file was cut short.
fn check_chunk_table_offset<R: Read + Seek>(
    r: &mut R,
    offset_to_points: u64,
    len: u64,
) -> Result<()> {
    r.seek(SeekFrom::Start(offset_to_points))?;
    let mut b = [0u8; 8];
    r.read_exact(&mut b)
        .map_err(|_| Error::corrupt("LAZ file truncated before its point data"))?;
    let table = i64::from_le_bytes(b);
    // -1 means the writer could not seek back to fill it in; readers then scan chunks.
    if table == -1 {
        return Ok(());
    }
    match u64::try_from(table) {
        Ok(t) if t > offset_to_points && t.checked_add(8).is_some_and(|e| e <= len) => Ok(()),
        _ => Err(Error::new(
            ErrorKind::Corrupt,
            format!("LAZ chunk table offset {table} lies outside the {len}-byte file (truncated?)"),
        )),
    }
}

/// Standard size of a LASzip item type (the `laz` decoders write that many bytes a
/// point whatever the VLR says), `None` for types they cannot decode; extra bytes
/// (0, 14) have the size the VLR gives.
fn laz_item_size(item_type: &laz::LazItemType) -> Option<u16> {
    use laz::LazItemType as T;
    match item_type {
        T::Byte(n) | T::Byte14(n) => (*n > 0).then_some(*n),
        T::Point10 => Some(20),
        T::GpsTime => Some(8),
        T::RGB12 | T::RGB14 => Some(6),
        T::RGBNIR14 => Some(8),
        T::WavePacket13 | T::WavePacket14 => Some(29),
        T::Point14 => Some(30),
    }
}

/// Parse the LASzip VLR as the las crate does and check it can describe these points:
/// at least one item, each of its type's size, together the point record length.
fn check_laszip_vlr(data: &[u8], record_length: u16) -> Result<(u16, laz::LazVlr)> {
    let vlr =
        laz::LazVlr::from_buffer(data).map_err(|e| Error::corrupt(format!("LASzip VLR: {e}")))?;
    if vlr.items().is_empty() {
        return Err(Error::corrupt("LASzip VLR lists no items to decode"));
    }
    let mut total = 0u32;
    for item in vlr.items() {
        let want = laz_item_size(&item.item_type());
        if want != Some(item.size()) {
            return Err(Error::corrupt(format!(
                "LASzip item {:?} of {} bytes (the decoder writes {})",
                item.item_type(),
                item.size(),
                want.map_or("none".to_string(), |w| w.to_string())
            )));
        }
        total += u32::from(item.size());
    }
    if total != u32::from(record_length) {
        return Err(Error::corrupt(format!(
            "LAS point record length {record_length} disagrees with the LASzip items ({total} bytes)"
        )));
    }
    // The compressor type is the VLR's first field (the parsed VLR keeps it private).
    let compressor = u16::from_le_bytes([data[0], data[1]]);
    if !(COMPRESSOR_POINTWISE..=COMPRESSOR_LAYERED).contains(&compressor) {
        return Err(Error::unsupported(format!(
            "LASzip compressor {compressor} is not supported"
        )));
    }
    Ok((compressor, vlr))
}

/// LASzip compressor types: one stream, point-wise chunked, layered chunked.
const COMPRESSOR_POINTWISE: u16 = 1;
const COMPRESSOR_LAYERED: u16 = 3;

/// Most points one compressed byte can hold, a sound bound from LASzip's coder: every
/// point after a chunk's first decodes at least one symbol with an adaptive model, and
/// no symbol of those models has a probability above 1 - 2^-15 (15-bit frequencies,
/// every count at least 1; bit models are 13-bit), so each costs at least
/// -log2(1 - 2^-15) = 4.4e-5 bits, and the decoder reads a byte each time 8 bits are
/// used up (past the end of a chunk it fails). Loose (real files hold 0.2-1 point a
/// byte): it rejects only absurd counts; budgets hold because tools size their buffers
/// by [`LazLayout::max_chunk_points`], not by this.
pub const MAX_POINTS_PER_LAZ_BYTE: u64 = 181_705;

/// Read the chunk table where the `laz` crate will (the offset after the header, or the
/// last 8 bytes of the file when that one was never filled in) and check it before any
/// decoder does: a chunk count the point data can hold (the `laz` crate reserves 16
/// bytes a chunk for whatever the file says), chunks whose bytes lie inside the point
/// data, point counts each chunk's bytes can hold and that add up to the header's.
fn check_laz_chunk_table<R: Read + Seek>(
    r: &mut R,
    (compressor, vlr): &(u16, laz::LazVlr),
    offset_to_points: u64,
    len: u64,
    point_count: u64,
    record_length: u16,
) -> Result<LazLayout> {
    let variable = vlr.uses_variable_size_chunks();
    let mut layout = LazLayout {
        compressor: *compressor,
        chunk_size: (!variable).then_some(vlr.chunk_size()),
        chunks: None,
        max_chunk_points: if variable {
            0
        } else {
            u64::from(vlr.chunk_size())
        },
    };
    if *compressor == COMPRESSOR_POINTWISE {
        // One stream, no table: only the streaming decoder reads it.
        layout.chunk_size = None;
        layout.max_chunk_points = point_count;
        return Ok(layout);
    }
    let read_i64 = |r: &mut R, at: u64| -> Result<i64> {
        r.seek(SeekFrom::Start(at))?;
        let mut b = [0u8; 8];
        r.read_exact(&mut b)
            .map_err(|_| Error::corrupt("LAZ file truncated before its chunk table"))?;
        Ok(i64::from_le_bytes(b))
    };
    let data_start = offset_to_points
        .checked_add(8)
        .filter(|&e| e <= len)
        .ok_or_else(|| Error::corrupt("LAZ file truncated before its point data"))?;
    let mut table = read_i64(r, offset_to_points)?;
    if table <= offset_to_points as i64 && len >= 8 {
        table = read_i64(r, len - 8)?;
    }
    if table <= offset_to_points as i64 {
        // Without the table nothing bounds a variable chunk or a layer's size.
        if variable || vlr.items()[0].version() >= 3 {
            return Err(Error::corrupt(
                "LAZ file with variable-size chunks or layers has no chunk table",
            ));
        }
        return Ok(layout);
    }
    let table = table as u64;
    if table < data_start || table.checked_add(8).is_none_or(|e| e > len) {
        return Err(Error::corrupt(format!(
            "LAZ chunk table offset {table} lies outside the {len}-byte file (truncated?)"
        )));
    }
    r.seek(SeekFrom::Start(table + 4))?;
    let mut b = [0u8; 4];
    r.read_exact(&mut b)
        .map_err(|_| Error::corrupt("LAZ file truncated inside its chunk table"))?;
    let chunks = u64::from(u32::from_le_bytes(b));
    let data_bytes = table - data_start;
    // A chunk holding a point stores the first one whole (LASzip starts each chunk
    // afresh), so it takes at least a record's bytes.
    let most = data_bytes / u64::from(record_length.max(1)) + 1;
    if chunks > most {
        return Err(Error::corrupt(format!(
            "LAZ chunk table claims {chunks} chunks, more than the {data_bytes} bytes of point data can hold ({most})"
        )));
    }
    layout.chunks = Some(chunks);
    if chunks == 0 {
        // The laz decoder indexes the table for variable-size chunks (and panics).
        if variable && point_count > 0 {
            return Err(Error::corrupt(format!(
                "LAZ chunk table lists no chunk for the {point_count} points of the header"
            )));
        }
        return Ok(layout);
    }
    r.seek(SeekFrom::Start(table))?;
    let entries = laz::laszip::ChunkTable::read(&mut *r, variable)
        .map_err(|e| Error::corrupt(format!("LAZ chunk table: {e}")))?;
    let mut bytes = 0u64;
    let mut points = 0u64;
    for (i, e) in entries.as_ref().iter().enumerate() {
        bytes = bytes.saturating_add(e.byte_count);
        if variable {
            let can = e
                .byte_count
                .saturating_add(2)
                .saturating_mul(MAX_POINTS_PER_LAZ_BYTE)
                .saturating_add(1);
            if e.point_count > can || e.point_count > point_count {
                return Err(Error::corrupt(format!(
                    "LAZ chunk {i} claims {} points in {} bytes (the file has {point_count})",
                    e.point_count, e.byte_count
                )));
            }
            points += e.point_count;
            layout.max_chunk_points = layout.max_chunk_points.max(e.point_count);
        }
    }
    if bytes > data_bytes {
        return Err(Error::corrupt(format!(
            "LAZ chunk table's chunks hold {bytes} bytes, the point data only {data_bytes}"
        )));
    }
    if variable && points != point_count {
        return Err(Error::corrupt(format!(
            "LAZ chunk table holds {points} points, the header says {point_count}"
        )));
    }
    if vlr.items()[0].version() >= 3 {
        check_layers(r, vlr, data_start, entries.as_ref(), record_length)?;
    }
    Ok(layout)
}

/// Layered (LAS 1.4) chunks start with their first point whole, a point count, then
/// one u32 size per layer, which the `laz` decoder allocates before reading (up to 4 GiB
/// each): every chunk's layers must fit in its bytes.
fn check_layers<R: Read + Seek>(
    r: &mut R,
    vlr: &laz::LazVlr,
    data_start: u64,
    chunks: &[laz::laszip::ChunkTableEntry],
    record_length: u16,
) -> Result<()> {
    use laz::LazItemType as T;
    let layers: usize = vlr
        .items()
        .iter()
        .map(|i| match i.item_type() {
            T::Point14 => 9,
            T::RGBNIR14 => 2,
            T::Byte14(n) | T::Byte(n) => usize::from(n),
            _ => 1,
        })
        .sum();
    let fixed = u64::from(record_length) + 4 + 4 * layers as u64;
    let mut sizes = vec![0u8; 4 * layers];
    let mut start = data_start;
    for (i, c) in chunks.iter().enumerate() {
        if c.byte_count > 0 {
            r.seek(SeekFrom::Start(start + u64::from(record_length) + 4))?;
            r.read_exact(&mut sizes)
                .map_err(|_| Error::corrupt("LAZ file truncated inside a chunk"))?;
            let total: u64 = sizes
                .chunks_exact(4)
                .map(|b| u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                .sum();
            if fixed + total > c.byte_count {
                return Err(Error::corrupt(format!(
                    "LAZ chunk {i} claims layers of {total} bytes in a {}-byte chunk",
                    c.byte_count
                )));
            }
        }
        start += c.byte_count;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_sizes_below_the_version_minimum_are_corrupt() {
        let las = std::fs::read(testkit::data("laz/autzen.las")).unwrap();
        let len = las.len() as u64;
        let ok = read_info(&mut std::io::Cursor::new(&las), len);
        assert!(ok.is_ok(), "{ok:?}");
        for size in [0u16, 100, 226] {
            let mut bad = las.clone();
            bad[94..96].copy_from_slice(&size.to_le_bytes());
            let e = read_info(&mut std::io::Cursor::new(&bad), len).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Corrupt, "{size}: {e}");
            assert!(e.message.contains("header size"), "{size}: {e}");
        }
    }

    #[test]
    fn extra_bytes_types() {
        assert_eq!(eb_type(3, 0), Some(("u16", 1, 2)));
        assert_eq!(eb_type(0, 7), Some(("undocumented", 1, 7)));
        assert_eq!(eb_type(13, 0), Some(("u16", 2, 4)));
        assert_eq!(eb_type(23, 0), Some(("u16", 3, 6)));
        assert_eq!(eb_type(30, 0), Some(("f64", 3, 24)));
        assert_eq!(eb_type(31, 0), None);
    }

    fn info(b: &[u8]) -> Result<LasInfo> {
        read_info(&mut std::io::Cursor::new(b), b.len() as u64).map(|(_, i)| i)
    }

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    /// The sample file with `patch` applied must be refused with a message containing
    /// `says`.
    fn refused(orig: &[u8], says: &str, patch: impl FnOnce(&mut Vec<u8>)) {
        let mut b = orig.to_vec();
        patch(&mut b);
        let e = info(&b).expect_err(says);
        assert!(e.message.contains(says), "{says}: {}", e.message);
    }

    /// Where the LASzip VLR's payload starts.
    fn laszip_payload(b: &[u8]) -> usize {
        let at = b
            .windows(14)
            .position(|w| w == b"laszip encoded")
            .expect("LASzip VLR");
        at - 2 + 54
    }

    #[test]
    fn laz_sizes_the_decoders_trust_are_checked() {
        let orig = std::fs::read(testkit::data("laz/autzen.laz")).unwrap();
        let ok = info(&orig).unwrap();
        let layout = ok.laz.clone().unwrap();
        assert_eq!(layout.chunk_size, Some(50_000));
        assert_eq!(layout.chunks, Some(1));
        let points = u32_at(&orig, 96) as usize;
        let vlr = laszip_payload(&orig);
        refused(&orig, "header size 0", |b| {
            b[94..96].copy_from_slice(&[0, 0])
        });
        refused(&orig, "scales", |b| {
            b[131..139].copy_from_slice(&6.1e-322f64.to_le_bytes())
        });
        refused(&orig, "disagrees with the LASzip items", |b| {
            let n = u16::from_le_bytes([b[105], b[106]]) + 1;
            b[105..107].copy_from_slice(&n.to_le_bytes());
        });
        refused(&orig, "lists no items", |b| {
            b[vlr + 32..vlr + 34].copy_from_slice(&[0, 0])
        });
        refused(&orig, "of 21 bytes", |b| {
            b[vlr + 36..vlr + 38].copy_from_slice(&21u16.to_le_bytes())
        });
        refused(&orig, "lies outside", |b| {
            let past = (b.len() as i64 + 100).to_le_bytes();
            b[points..points + 8].copy_from_slice(&past);
        });
        refused(&orig, "claims 4294967295 chunks", |b| {
            let t = i64::from_le_bytes(b[points..points + 8].try_into().unwrap()) as usize;
            b[t + 4..t + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        });
    }

    #[test]
    fn copc_evlrs_and_layers_are_checked() {
        let orig = std::fs::read(testkit::data("laz/autzen.copc.laz")).unwrap();
        let ok = info(&orig).unwrap();
        let layout = ok.laz.clone().unwrap();
        assert_eq!(layout.chunk_size, None);
        assert_eq!(layout.max_chunk_points, ok.point_count);
        // The first EVLR's length (LAS 1.4: its offset at 235 of the header).
        let evlr = u64::from_le_bytes(orig[235..243].try_into().unwrap()) as usize;
        refused(&orig, "past the end of the file", |b| {
            b[evlr + 20..evlr + 28].copy_from_slice(&7_000_000_000_000_000_000u64.to_le_bytes())
        });
        // The first layer size of the first chunk: after the table offset, the first
        // point whole and the chunk's point count.
        let points = u32_at(&orig, 96) as usize;
        let record = usize::from(u16::from_le_bytes([orig[105], orig[106]]));
        let layer = points + 8 + record + 4;
        refused(&orig, "claims layers of", |b| {
            b[layer..layer + 4].copy_from_slice(&0xFF00_0000u32.to_le_bytes())
        });
    }
}
