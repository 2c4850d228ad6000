//! JPEG 2000 probe: JP2 boxes and the codestream main header (SIZ, COD), never tile data.
//!
//! Written by hand: no Rust crate reads these headers without decoding. The safe wrappers
//! (`jpeg2k`) give only size and components from the header; OpenJPEG's codestream info
//! (via `openjpeg-sys`) means unsafe FFI into a C parser and still says nothing of the JP2
//! boxes (colour, resolution, xml, uuid). What is needed is small: a box walker
//! (ISO/IEC 15444-1 Annex I) and the SIZ and COD marker segments (Annex A). Every length is
//! checked against its parent box and the file size before anything is read, reads are
//! bounded by the 16-bit marker lengths, and box and marker counts are capped, so a
//! hostile file gives an error instead of a huge read or a long walk.

use super::{raster::check_dimensions, Detail, Format, ImageSummary, Layout, Probe, SampleFormat};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// Boxes walked at most (all levels); a file with more is hostile.
const MAX_BOXES: u32 = 65_536;
/// Main-header marker segments walked at most before the first tile.
const MAX_MARKERS: u32 = 65_536;
/// uuid box ids listed at most (the count is always exact).
const MAX_UUIDS_LISTED: usize = 64;

/// JPEG 2000 header details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Jp2Info {
    /// `true` for a JP2 container, `false` for a raw codestream (.j2k/.j2c).
    pub container: bool,
    /// The codestream main header (boxed: it is most of the struct's size).
    pub codestream: Box<Codestream>,
    /// Colour specification from the first `colr` box (JP2 only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub colour: Option<Colour>,
    /// Capture resolution (`resc`), pixels per metre `[vertical, horizontal]`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub capture_resolution: Option<[f64; 2]>,
    /// Default display resolution (`resd`), pixels per metre `[vertical, horizontal]`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub display_resolution: Option<[f64; 2]>,
    /// Number of `xml ` boxes.
    pub xml_boxes: u32,
    /// Number of `uuid` boxes.
    pub uuid_boxes: u32,
    /// The ids of the `uuid` boxes (hex), e.g. GeoJP2's
    /// `b14bf8bd083d4b43a5ae8cd7d5a6ce03`.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub uuids: Vec<String>,
}

/// A `colr` box.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Colour {
    /// `enumerated` or `icc` (restricted or any).
    pub method: String,
    /// The enumerated colourspace: `srgb` (16), `greyscale` (17), `sycc` (18),
    /// `e-sycc` (24), `cmyk` (12), `cielab` (14) or `unknown_N`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub colourspace: Option<String>,
    /// Length of the ICC profile in bytes.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub icc_bytes: Option<u64>,
}

/// The main header of a codestream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Codestream {
    /// Image width (Xsiz - XOsiz).
    pub width: u64,
    /// Image height (Ysiz - YOsiz).
    pub height: u64,
    /// Rsiz (capabilities / profile).
    pub rsiz: u16,
    /// Components.
    pub components: Vec<Component>,
    /// Nominal tile size `[XTsiz, YTsiz]`.
    pub tile_size: [u64; 2],
    /// Tiles across and down.
    pub tiles: [u64; 2],
    /// Total tiles.
    pub tile_count: u64,
    /// Decomposition levels (COD).
    pub levels: u8,
    /// Quality layers (COD).
    pub layers: u16,
    /// Progression order: LRCP, RLCP, RPCL, PCRL, CPRL.
    pub progression: String,
    /// Code-block size `[width, height]` in samples.
    pub code_block: [u32; 2],
    /// Wavelet: `5-3` (reversible) or `9-7` (irreversible).
    pub transform: String,
    /// Multiple component transform used.
    pub mct: bool,
    /// SOP markers may be used.
    pub sop: bool,
    /// EPH markers are used.
    pub eph: bool,
    /// Precinct sizes per resolution level, `[w, h]`, only when not the default maximum.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub precincts: Vec<[u32; 2]>,
    /// Names of the marker segments found in the main header, in order of first appearance.
    pub markers: Vec<String>,
}

/// One component of SIZ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Component {
    /// Bit depth.
    pub depth: u8,
    /// Signed samples.
    pub signed: bool,
    /// Subsampling `[XRsiz, YRsiz]`.
    pub subsampling: [u8; 2],
}

/// Probe a JPEG 2000 file (JP2 container or raw codestream).
pub fn probe(path: &Path) -> Result<Probe> {
    let file = File::open(path)?;
    let size = file.metadata()?.len();
    let mut r = BufReader::with_capacity(8192, file);
    let mut sig = [0u8; 4];
    r.read_exact(&mut sig)?;
    r.seek(SeekFrom::Start(0))?;
    let info = if sig == [0xFF, 0x4F, 0xFF, 0x51] {
        let codestream = read_codestream(&mut r, 0, size)?;
        Jp2Info {
            container: false,
            codestream: Box::new(codestream),
            colour: None,
            capture_resolution: None,
            display_resolution: None,
            xml_boxes: 0,
            uuid_boxes: 0,
            uuids: Vec::new(),
        }
    } else {
        read_jp2(&mut r, size)?
    };
    summarise(info)
}

fn summarise(info: Jp2Info) -> Result<Probe> {
    let cs = &info.codestream;
    let bits = cs
        .components
        .iter()
        .map(|c| u32::from(c.depth))
        .max()
        .unwrap_or(0);
    let bands = cs.components.len() as u32;
    check_dimensions(cs.width, cs.height, bands, bits).map_err(prefixed)?;
    let image = ImageSummary {
        width: cs.width,
        height: cs.height,
        bands,
        bits,
        sample_format: if cs.components.iter().any(|c| c.signed) {
            SampleFormat::Int
        } else {
            SampleFormat::Uint
        },
        pages: 1,
        layout: Layout::Tiles,
        // A tile never holds more than the image (one-tile files often say 2^32-1).
        block: [
            cs.tile_size[0].min(cs.width),
            cs.tile_size[1].min(cs.height),
        ],
        compressed: true,
    };
    Ok(Probe {
        format: if info.container {
            Format::Jp2
        } else {
            Format::J2k
        },
        bytes: 0,
        image: Some(image),
        points: None,
        archive: None,
        document: None,
        detail: Detail::Jp2(info),
    })
}

fn prefixed(e: Error) -> Error {
    Error::new(e.kind, format!("JPEG 2000: {}", e.message))
}

fn corrupt(msg: impl std::fmt::Display) -> Error {
    Error::corrupt(format!("JPEG 2000: {msg}"))
}

/// A box header: type, where its content starts and where the box ends.
#[derive(Debug, Clone, Copy)]
struct BoxHeader {
    kind: [u8; 4],
    start: u64,
    end: u64,
}

/// Reads the box header at `pos`, inside a parent ending at `parent_end`.
fn read_box<R: Read + Seek>(r: &mut R, pos: u64, parent_end: u64) -> Result<BoxHeader> {
    if parent_end.saturating_sub(pos) < 8 {
        return Err(corrupt(format!("truncated box header at {pos}")));
    }
    r.seek(SeekFrom::Start(pos))?;
    let mut h = [0u8; 8];
    r.read_exact(&mut h)?;
    let lbox = u64::from(u32::from_be_bytes([h[0], h[1], h[2], h[3]]));
    let kind = [h[4], h[5], h[6], h[7]];
    let (start, len) = match lbox {
        // Length 0: the box runs to the end of its parent (only legal for the last box).
        0 => (pos + 8, parent_end - pos),
        1 => {
            if parent_end - pos < 16 {
                return Err(corrupt(format!("truncated XLBox at {pos}")));
            }
            let mut x = [0u8; 8];
            r.read_exact(&mut x)?;
            (pos + 16, u64::from_be_bytes(x))
        }
        n => (pos + 8, n),
    };
    let header = start - pos;
    if len < header {
        return Err(corrupt(format!(
            "box {:?} at {pos} has length {len}, less than its header",
            String::from_utf8_lossy(&kind)
        )));
    }
    if len > parent_end - pos {
        return Err(corrupt(format!(
            "box {:?} at {pos} has length {len}, past the end of its parent",
            String::from_utf8_lossy(&kind)
        )));
    }
    Ok(BoxHeader {
        kind,
        start,
        end: pos + len,
    })
}

fn read_jp2<R: Read + Seek>(r: &mut R, size: u64) -> Result<Jp2Info> {
    let mut boxes = 0u32;
    let mut pos = 0u64;
    let mut index = 0u32;
    let mut seen_ftyp = false;
    let mut header: Option<Jp2Header> = None;
    let mut codestream = None;
    let (mut xml_boxes, mut uuid_boxes, mut uuids) = (0u32, 0u32, Vec::new());
    while pos < size {
        boxes += 1;
        if boxes > MAX_BOXES {
            return Err(Error::hostile("JPEG 2000: too many boxes"));
        }
        let b = read_box(r, pos, size)?;
        match (&b.kind, index) {
            (b"jP  ", 0) => {
                let mut s = [0u8; 4];
                read_exact_in(r, &b, &mut s)?;
                if s != [0x0D, 0x0A, 0x87, 0x0A] || b.end - b.start != 4 {
                    return Err(corrupt("bad signature box"));
                }
            }
            (_, 0) => return Err(corrupt("the first box is not the JP2 signature")),
            (b"ftyp", _) => {
                let mut brand = [0u8; 4];
                read_exact_in(r, &b, &mut brand)?;
                if &brand != b"jp2 " && &brand != b"jpx " && &brand != b"jph " {
                    return Err(Error::unsupported(format!(
                        "JPEG 2000: file type brand {:?}",
                        String::from_utf8_lossy(&brand)
                    )));
                }
                seen_ftyp = true;
            }
            (b"jp2h", _) if header.is_none() => {
                header = Some(read_jp2h(r, &b, &mut boxes)?);
            }
            (b"jp2c", _) if codestream.is_none() => {
                codestream = Some(read_codestream(r, b.start, b.end)?);
            }
            (b"xml ", _) => xml_boxes += 1,
            (b"uuid", _) => {
                uuid_boxes += 1;
                if uuids.len() < MAX_UUIDS_LISTED {
                    let mut id = [0u8; 16];
                    read_exact_in(r, &b, &mut id)?;
                    uuids.push(id.iter().map(|x| format!("{x:02x}")).collect());
                }
            }
            _ => {}
        }
        index += 1;
        pos = b.end;
    }
    if !seen_ftyp {
        return Err(corrupt("no file type (ftyp) box"));
    }
    let header = header.ok_or_else(|| corrupt("no JP2 header (jp2h) box"))?;
    let codestream = codestream.ok_or_else(|| corrupt("no codestream (jp2c) box"))?;
    // The JP2 header repeats the codestream's size; decoders refuse files where they differ.
    if (header.width, header.height, header.components)
        != (
            codestream.width,
            codestream.height,
            codestream.components.len() as u16,
        )
    {
        return Err(corrupt(format!(
            "image header says {}x{} with {} components, codestream {}x{} with {}",
            header.width,
            header.height,
            header.components,
            codestream.width,
            codestream.height,
            codestream.components.len()
        )));
    }
    Ok(Jp2Info {
        container: true,
        codestream: Box::new(codestream),
        colour: header.colour,
        capture_resolution: header.capture_resolution,
        display_resolution: header.display_resolution,
        xml_boxes,
        uuid_boxes,
        uuids,
    })
}

/// What the `jp2h` superbox says.
#[derive(Debug, Default)]
struct Jp2Header {
    width: u64,
    height: u64,
    components: u16,
    colour: Option<Colour>,
    capture_resolution: Option<[f64; 2]>,
    display_resolution: Option<[f64; 2]>,
}

/// Fills `buf` from the start of box `b`'s content, which must be long enough.
fn read_exact_in<R: Read + Seek>(r: &mut R, b: &BoxHeader, buf: &mut [u8]) -> Result<()> {
    if b.end - b.start < buf.len() as u64 {
        return Err(corrupt(format!(
            "box {:?} is too short",
            String::from_utf8_lossy(&b.kind)
        )));
    }
    r.seek(SeekFrom::Start(b.start))?;
    r.read_exact(buf)?;
    Ok(())
}

fn read_jp2h<R: Read + Seek>(r: &mut R, jp2h: &BoxHeader, boxes: &mut u32) -> Result<Jp2Header> {
    let mut h = Jp2Header::default();
    let mut seen_ihdr = false;
    let mut pos = jp2h.start;
    while pos < jp2h.end {
        *boxes += 1;
        if *boxes > MAX_BOXES {
            return Err(Error::hostile("JPEG 2000: too many boxes"));
        }
        let b = read_box(r, pos, jp2h.end)?;
        match &b.kind {
            b"ihdr" => {
                let mut d = [0u8; 14];
                read_exact_in(r, &b, &mut d)?;
                h.height = u64::from(u32::from_be_bytes([d[0], d[1], d[2], d[3]]));
                h.width = u64::from(u32::from_be_bytes([d[4], d[5], d[6], d[7]]));
                h.components = u16::from_be_bytes([d[8], d[9]]);
                seen_ihdr = true;
            }
            // Several colr boxes may follow one another; the first is the one to use.
            b"colr" if h.colour.is_none() => {
                let mut d = [0u8; 3];
                read_exact_in(r, &b, &mut d)?;
                let content = b.end - b.start;
                h.colour = Some(match d[0] {
                    1 => {
                        let mut e = [0u8; 7];
                        read_exact_in(r, &b, &mut e)?;
                        let cs = u32::from_be_bytes([e[3], e[4], e[5], e[6]]);
                        Colour {
                            method: "enumerated".into(),
                            colourspace: Some(colourspace_name(cs)),
                            icc_bytes: None,
                        }
                    }
                    2 | 3 => Colour {
                        method: "icc".into(),
                        colourspace: None,
                        icc_bytes: Some(content - 3),
                    },
                    m => Colour {
                        method: format!("unknown_{m}"),
                        colourspace: None,
                        icc_bytes: None,
                    },
                });
            }
            b"res " => {
                let mut pos = b.start;
                while pos < b.end {
                    *boxes += 1;
                    if *boxes > MAX_BOXES {
                        return Err(Error::hostile("JPEG 2000: too many boxes"));
                    }
                    let rb = read_box(r, pos, b.end)?;
                    let slot = match &rb.kind {
                        b"resc" => Some(&mut h.capture_resolution),
                        b"resd" => Some(&mut h.display_resolution),
                        _ => None,
                    };
                    if let Some(slot) = slot {
                        let mut d = [0u8; 10];
                        read_exact_in(r, &rb, &mut d)?;
                        *slot = Some(resolution(&d)?);
                    }
                    pos = rb.end;
                }
            }
            _ => {}
        }
        pos = b.end;
    }
    if !seen_ihdr {
        return Err(corrupt("JP2 header has no image header (ihdr) box"));
    }
    Ok(h)
}

/// A `resc`/`resd` box: `[vertical, horizontal]` grid points per metre, each N / D * 10^E.
fn resolution(d: &[u8; 10]) -> Result<[f64; 2]> {
    let be16 = |i: usize| f64::from(u16::from_be_bytes([d[i], d[i + 1]]));
    let (vn, vd, hn, hd) = (be16(0), be16(2), be16(4), be16(6));
    if vd == 0.0 || hd == 0.0 {
        return Err(corrupt("resolution box with a zero denominator"));
    }
    let (ve, he) = (i32::from(d[8] as i8), i32::from(d[9] as i8));
    Ok([vn / vd * 10f64.powi(ve), hn / hd * 10f64.powi(he)])
}

fn colourspace_name(cs: u32) -> String {
    match cs {
        12 => "cmyk".into(),
        14 => "cielab".into(),
        16 => "srgb".into(),
        17 => "greyscale".into(),
        18 => "sycc".into(),
        20 => "e-srgb".into(),
        21 => "romm-rgb".into(),
        24 => "e-sycc".into(),
        n => format!("unknown_{n}"),
    }
}

/// The name of a main-header marker, for the `markers` list.
fn marker_name(m: u16) -> String {
    match m {
        0xFF50 => "CAP".into(),
        0xFF51 => "SIZ".into(),
        0xFF52 => "COD".into(),
        0xFF53 => "COC".into(),
        0xFF55 => "TLM".into(),
        0xFF57 => "PLM".into(),
        0xFF59 => "CPF".into(),
        0xFF5C => "QCD".into(),
        0xFF5D => "QCC".into(),
        0xFF5E => "RGN".into(),
        0xFF5F => "POC".into(),
        0xFF60 => "PPM".into(),
        0xFF63 => "CRG".into(),
        0xFF64 => "COM".into(),
        0xFF74 => "MCT".into(),
        0xFF75 => "MCC".into(),
        0xFF77 => "MCO".into(),
        n => format!("{n:04X}"),
    }
}

/// Reads one marker segment's body (after its 2-byte length) into `buf`, checking that it
/// stays inside the codestream. Marker lengths are 16-bit, so `buf` is at most 64 KiB.
fn read_segment<R: Read>(r: &mut R, pos: u64, end: u64, buf: &mut Vec<u8>) -> Result<u64> {
    let mut l = [0u8; 2];
    r.read_exact(&mut l)?;
    let len = u64::from(u16::from_be_bytes(l));
    if len < 2 || pos + 2 + len > end {
        return Err(corrupt(format!(
            "marker segment at {pos} has bad length {len}"
        )));
    }
    buf.resize(len as usize - 2, 0);
    r.read_exact(buf)?;
    Ok(pos + 2 + len)
}

/// Parses the codestream main header found between `start` and `end`.
fn read_codestream<R: Read + Seek>(r: &mut R, start: u64, end: u64) -> Result<Codestream> {
    if end.saturating_sub(start) < 4 {
        return Err(corrupt("codestream too short"));
    }
    r.seek(SeekFrom::Start(start))?;
    let mut m = [0u8; 4];
    r.read_exact(&mut m)?;
    if m != [0xFF, 0x4F, 0xFF, 0x51] {
        return Err(corrupt("codestream does not start with SOC, SIZ"));
    }
    let mut buf = Vec::new();
    let mut pos = read_segment(r, start + 4, end, &mut buf)?;
    let mut cs = parse_siz(&buf)?;
    let mut markers = vec!["SIZ".to_string()];
    let mut seen_cod = false;
    let mut count = 0u32;
    loop {
        count += 1;
        if count > MAX_MARKERS {
            return Err(Error::hostile("JPEG 2000: too many main header markers"));
        }
        if end.saturating_sub(pos) < 2 {
            return Err(corrupt("codestream ends inside its main header"));
        }
        r.read_exact(&mut m[..2])?;
        let marker = u16::from_be_bytes([m[0], m[1]]);
        match marker {
            // SOT: the first tile-part, the main header is over.
            0xFF90 => break,
            0xFFD9 => return Err(corrupt("EOC before any tile")),
            0xFF00..=0xFFFF => {
                pos = read_segment(r, pos + 2, end, &mut buf)?;
                let name = marker_name(marker);
                if !markers.contains(&name) {
                    markers.push(name);
                }
                // Only the first COD counts; a repeated one is invalid but harmless here.
                if marker == 0xFF52 && !seen_cod {
                    parse_cod(&buf, &mut cs)?;
                    seen_cod = true;
                }
            }
            _ => {
                return Err(corrupt(format!(
                    "expected a marker at {pos}, found {marker:04X}"
                )))
            }
        }
    }
    if !seen_cod {
        return Err(corrupt("main header has no COD marker"));
    }
    cs.markers = markers;
    Ok(cs)
}

/// SIZ (A.5.1): image and tile geometry and the components.
fn parse_siz(b: &[u8]) -> Result<Codestream> {
    if b.len() < 36 {
        return Err(corrupt("SIZ too short"));
    }
    let be32 = |i: usize| u64::from(u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]));
    let rsiz = u16::from_be_bytes([b[0], b[1]]);
    let (xsiz, ysiz, xosiz, yosiz) = (be32(2), be32(6), be32(10), be32(14));
    let (xtsiz, ytsiz, xtosiz, ytosiz) = (be32(18), be32(22), be32(26), be32(30));
    let csiz = usize::from(u16::from_be_bytes([b[34], b[35]]));
    if csiz == 0 || csiz > 16384 || b.len() != 36 + 3 * csiz {
        return Err(corrupt(format!(
            "SIZ with {csiz} components and {} bytes",
            b.len()
        )));
    }
    if xsiz <= xosiz || ysiz <= yosiz {
        return Err(corrupt(format!(
            "SIZ image area is empty ({xsiz}x{ysiz} from {xosiz},{yosiz})"
        )));
    }
    if xtsiz == 0
        || ytsiz == 0
        || xtosiz > xosiz
        || ytosiz > yosiz
        || xtosiz + xtsiz <= xosiz
        || ytosiz + ytsiz <= yosiz
    {
        return Err(corrupt(format!(
            "SIZ tile grid {xtsiz}x{ytsiz} at {xtosiz},{ytosiz} does not cover the image"
        )));
    }
    let mut components = Vec::with_capacity(csiz);
    for c in b[36..].chunks_exact(3) {
        let depth = (c[0] & 0x7F) + 1;
        if depth > 38 || c[1] == 0 || c[2] == 0 {
            return Err(corrupt(format!(
                "SIZ component of depth {depth}, subsampling {}x{}",
                c[1], c[2]
            )));
        }
        components.push(Component {
            depth,
            signed: c[0] & 0x80 != 0,
            subsampling: [c[1], c[2]],
        });
    }
    let tiles = [
        (xsiz - xtosiz).div_ceil(xtsiz),
        (ysiz - ytosiz).div_ceil(ytsiz),
    ];
    let tile_count = tiles[0] * tiles[1];
    // Tile indices (Isot) are 16-bit: a grid of more than 65535 tiles cannot be coded.
    if tile_count > 65535 {
        return Err(Error::hostile(format!(
            "JPEG 2000: {} x {} tiles, more than a codestream can index",
            tiles[0], tiles[1]
        )));
    }
    Ok(Codestream {
        width: xsiz - xosiz,
        height: ysiz - yosiz,
        rsiz,
        components,
        tile_size: [xtsiz, ytsiz],
        tiles,
        tile_count,
        levels: 0,
        layers: 0,
        progression: String::new(),
        code_block: [0, 0],
        transform: String::new(),
        mct: false,
        sop: false,
        eph: false,
        precincts: Vec::new(),
        markers: Vec::new(),
    })
}

/// COD (A.6.1): coding style defaults.
fn parse_cod(b: &[u8], cs: &mut Codestream) -> Result<()> {
    if b.len() < 10 {
        return Err(corrupt("COD too short"));
    }
    let scod = b[0];
    cs.sop = scod & 0x02 != 0;
    cs.eph = scod & 0x04 != 0;
    cs.progression = match b[1] {
        0 => "LRCP",
        1 => "RLCP",
        2 => "RPCL",
        3 => "PCRL",
        4 => "CPRL",
        n => return Err(corrupt(format!("COD progression order {n}"))),
    }
    .into();
    cs.layers = u16::from_be_bytes([b[2], b[3]]);
    if cs.layers == 0 {
        return Err(corrupt("COD with zero quality layers"));
    }
    cs.mct = b[4] != 0;
    cs.levels = b[5];
    if cs.levels > 32 {
        return Err(corrupt(format!(
            "COD with {} decomposition levels",
            cs.levels
        )));
    }
    let (xcb, ycb) = (b[6], b[7]);
    // Exponents offset by 2; each at most 10 (1024) and together at most 12 (4096 samples).
    if xcb > 8 || ycb > 8 || xcb + ycb > 8 {
        return Err(corrupt(format!("COD code-block exponents {xcb}, {ycb}")));
    }
    cs.code_block = [1 << (xcb + 2), 1 << (ycb + 2)];
    cs.transform = match b[9] {
        0 => "9-7",
        1 => "5-3",
        n => return Err(corrupt(format!("COD wavelet transform {n}"))),
    }
    .into();
    if scod & 0x01 != 0 {
        let sizes = &b[10..];
        if sizes.len() != usize::from(cs.levels) + 1 {
            return Err(corrupt("COD precinct list does not match the levels"));
        }
        cs.precincts = sizes
            .iter()
            .map(|p| [1u32 << (p & 0x0F), 1u32 << (p >> 4)])
            .collect();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use std::io::Cursor;

    pub(crate) use testkit::j2k_codestream as codestream;

    #[test]
    fn parses_main_header() {
        let cs = read_codestream(&mut Cursor::new(codestream(100, 50, 32, 3)), 0, 200).unwrap();
        assert_eq!((cs.width, cs.height, cs.components.len()), (100, 50, 3));
        assert_eq!(cs.tiles, [4, 2]);
        assert_eq!(cs.tile_count, 8);
        assert_eq!((cs.levels, cs.layers), (5, 3));
        assert_eq!(cs.progression, "RPCL");
        assert_eq!(cs.code_block, [64, 64]);
        assert_eq!(cs.transform, "5-3");
        assert!(cs.sop && cs.eph && cs.mct);
        assert_eq!(cs.markers, ["SIZ", "COD", "QCD"]);
    }

    #[test]
    fn rejects_bad_headers() {
        let mut v = codestream(100, 50, 32, 3);
        v[5] = 0xFF; // Lsiz no longer matches Csiz.
        let e = read_codestream(&mut Cursor::new(v), 0, 200).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Corrupt);
        let v = codestream(100, 50, 0, 3);
        assert!(read_codestream(&mut Cursor::new(v), 0, 200).is_err());
        let v = codestream(u32::MAX, u32::MAX, 1, 1);
        let e = read_codestream(&mut Cursor::new(v), 0, 200).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Hostile);
    }

    #[test]
    fn box_lengths_are_checked() {
        // A box claiming 2^63 bytes inside a 20-byte file.
        let mut v = vec![0, 0, 0, 1, b'j', b'p', b'2', b'c'];
        v.extend_from_slice(&(1u64 << 63).to_be_bytes());
        v.extend_from_slice(&[0; 4]);
        let e = read_box(&mut Cursor::new(v), 0, 20).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Corrupt);
        // A length shorter than the header.
        let v = vec![0, 0, 0, 4, b'x', b'm', b'l', b' '];
        assert!(read_box(&mut Cursor::new(v), 0, 8).is_err());
        // Length 0 runs to the parent's end.
        let v = vec![0, 0, 0, 0, b'j', b'p', b'2', b'c', 1, 2];
        let b = read_box(&mut Cursor::new(v), 0, 10).unwrap();
        assert_eq!((b.start, b.end), (8, 10));
    }

    #[test]
    fn resolution_boxes() {
        // 300 dpi = 11811.02 pixels per metre: 11811 / 1 * 10^0.
        let d = [0x2E, 0x23, 0, 1, 0x2E, 0x23, 0, 1, 0, 0];
        assert_eq!(resolution(&d).unwrap(), [11811.0, 11811.0]);
        let d = [0, 3, 0, 1, 0, 3, 0, 0, 2, 2];
        assert!(resolution(&d).is_err());
    }
}
