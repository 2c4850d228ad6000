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
    if data.len() % EB_DESCRIPTOR != 0 {
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
            ("laszip encoded", 22204) => self.laszip = true,
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
    if compressed {
        check_laz_chunk_table(r, offset_to_points, len)?;
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
    };
    Ok((format, info))
}

/// LAZ point data starts with the offset of the chunk table, which LASzip writes last: a
/// pointer past the end of the file means the file was cut short.
fn check_laz_chunk_table<R: Read + Seek>(r: &mut R, offset_to_points: u64, len: u64) -> Result<()> {
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
}
