//! The JP2 file format boxes (ISO 15444-1 Annex I), written here around the codestream.
//!
//! Why by hand: the OpenJPEG 2.5.3 that `openjpeg-sys` vendors asserts when asked to write
//! an ICC profile, cannot write `res `, `xml ` or `uuid` boxes, and writes a 32-bit `jp2c`
//! length, so a codestream over 4 GiB would be unreadable. Boxes are small and fully
//! specified; writing them is a few dozen lines.

use raster::tiff::{Colour, Extra, Resolution};

/// The UUID that marks an XMP packet in a `uuid` box (ISO 16684-1, JPEG 2000 part 1).
pub const XMP_UUID: [u8; 16] = [
    0xBE, 0x7A, 0xCF, 0xCB, 0x97, 0xA9, 0x42, 0xE8, 0x9C, 0x71, 0x99, 0x94, 0x91, 0xE3, 0xAF, 0xAC,
];

/// What goes in the JP2 header and metadata boxes.
#[derive(Debug, Clone, Default)]
pub struct Header {
    /// Image width.
    pub width: u32,
    /// Image height.
    pub height: u32,
    /// Components.
    pub comps: u16,
    /// Bits per sample.
    pub prec: u8,
    /// Signed samples (the top bit of the ihdr BPC byte).
    pub signed: bool,
    /// Gray or RGB (for the enumerated colour space).
    pub colour: Option<Colour>,
    /// Meaning of the component after the colour ones (a `cdef` box says it).
    pub extra: Option<Extra>,
    /// A restricted ICC profile to write instead of the enumerated colour space.
    pub icc: Option<Vec<u8>>,
    /// Capture resolution (`res ` / `resc`).
    pub resolution: Option<Resolution>,
    /// An XML document for an `xml ` box.
    pub xml: Option<Vec<u8>>,
    /// An XMP packet for the XMP `uuid` box.
    pub xmp: Option<Vec<u8>>,
}

fn boxed(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + payload.len());
    v.extend_from_slice(&((8 + payload.len()) as u32).to_be_bytes());
    v.extend_from_slice(kind);
    v.extend_from_slice(payload);
    v
}

/// Whether an ICC profile is of the restricted kind JP2 allows with method 2 (ISO
/// 15444-1 I.5.3.3): a monochrome input profile (grayTRC) or a three-component
/// matrix-based input profile (rXYZ/gXYZ/bXYZ and rTRC/gTRC/bTRC), with a data colour
/// space matching the components. Anything else (LUT-based, CMYK, Lab) needs JPX.
pub fn icc_is_restricted(icc: &[u8], colour: Colour) -> bool {
    if icc.len() < 132 || &icc[36..40] != b"acsp" {
        return false;
    }
    let space = &icc[16..20];
    let count = u32::from_be_bytes([icc[128], icc[129], icc[130], icc[131]]) as usize;
    let mut tags = Vec::new();
    for i in 0..count.min(1000) {
        let at = 132 + i * 12;
        match icc.get(at..at + 4) {
            Some(t) => tags.push([t[0], t[1], t[2], t[3]]),
            None => return false,
        }
    }
    let has = |t: &[u8; 4]| tags.iter().any(|x| x == t);
    match colour {
        Colour::Gray => space == b"GRAY" && has(b"kTRC"),
        Colour::Rgb => {
            space == b"RGB "
                && [b"rXYZ", b"gXYZ", b"bXYZ", b"rTRC", b"gTRC", b"bTRC"]
                    .iter()
                    .all(|t| has(t))
        }
    }
}

/// The boxes before the codestream: signature, ftyp, jp2h (ihdr, colr, cdef, res), then
/// `xml ` and the XMP `uuid` box when given.
pub fn leading_boxes(h: &Header) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&boxed(b"jP  ", &[0x0D, 0x0A, 0x87, 0x0A]));
    let mut ftyp = Vec::new();
    ftyp.extend_from_slice(b"jp2 ");
    ftyp.extend_from_slice(&0u32.to_be_bytes());
    ftyp.extend_from_slice(b"jp2 ");
    out.extend_from_slice(&boxed(b"ftyp", &ftyp));

    let mut jp2h = Vec::new();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&h.height.to_be_bytes());
    ihdr.extend_from_slice(&h.width.to_be_bytes());
    ihdr.extend_from_slice(&h.comps.to_be_bytes());
    // Precision - 1, the top bit set for signed components (ISO 15444-1 I.5.3.1).
    ihdr.push((h.prec - 1) | if h.signed { 0x80 } else { 0 });
    ihdr.push(7); // compression type: JPEG 2000
    ihdr.push(0); // colour space known
    ihdr.push(0); // no intellectual property box
    jp2h.extend_from_slice(&boxed(b"ihdr", &ihdr));

    let colour = h.colour.unwrap_or(Colour::Rgb);
    let mut colr = Vec::new();
    match &h.icc {
        Some(icc) => {
            colr.extend_from_slice(&[2, 0, 0]);
            colr.extend_from_slice(icc);
        }
        None => {
            colr.extend_from_slice(&[1, 0, 0]);
            let cs: u32 = match colour {
                Colour::Rgb => 16,
                Colour::Gray => 17,
            };
            colr.extend_from_slice(&cs.to_be_bytes());
        }
    }
    jp2h.extend_from_slice(&boxed(b"colr", &colr));

    let colour_comps: u16 = match colour {
        Colour::Rgb => 3,
        Colour::Gray => 1,
    };
    if h.comps > colour_comps {
        // Channel definitions: colour channels map to their colours, the extra channel is
        // opacity (or premultiplied opacity) for the whole image, further ones unspecified.
        let mut cdef = Vec::new();
        cdef.extend_from_slice(&h.comps.to_be_bytes());
        for c in 0..h.comps {
            let (typ, asoc): (u16, u16) = if c < colour_comps {
                (0, c + 1)
            } else if c == colour_comps {
                match h.extra.unwrap_or(Extra::Unspecified) {
                    Extra::Alpha => (1, 0),
                    Extra::Premultiplied => (2, 0),
                    _ => (0xFFFF, 0xFFFF),
                }
            } else {
                (0xFFFF, 0xFFFF)
            };
            cdef.extend_from_slice(&c.to_be_bytes());
            cdef.extend_from_slice(&typ.to_be_bytes());
            cdef.extend_from_slice(&asoc.to_be_bytes());
        }
        jp2h.extend_from_slice(&boxed(b"cdef", &cdef));
    }

    if let Some(r) = &h.resolution {
        let mut resc = Vec::new();
        resc.extend_from_slice(&(r.y.0 as u16).to_be_bytes());
        resc.extend_from_slice(&(r.y.1 as u16).to_be_bytes());
        resc.extend_from_slice(&(r.x.0 as u16).to_be_bytes());
        resc.extend_from_slice(&(r.x.1 as u16).to_be_bytes());
        resc.push(r.y.2 as u8);
        resc.push(r.x.2 as u8);
        jp2h.extend_from_slice(&boxed(b"res ", &boxed(b"resc", &resc)));
    }
    out.extend_from_slice(&boxed(b"jp2h", &jp2h));

    if let Some(xml) = &h.xml {
        out.extend_from_slice(&boxed(b"xml ", xml));
    }
    if let Some(xmp) = &h.xmp {
        let mut payload = XMP_UUID.to_vec();
        payload.extend_from_slice(xmp);
        out.extend_from_slice(&boxed(b"uuid", &payload));
    }
    out
}

/// An XMP packet fit for the JP2 XMP box, or why it is not. Trailing NULs and whitespace
/// are trimmed (camera files pad the TIFF tag, and jpylyzer then calls the JP2 invalid:
/// `containsWellformedXML False`), leading ones too; what is left must be UTF-8 and
/// well-formed XML (quick-xml's checks: balanced and matching tags, sound attributes,
/// known entity references, one root element, no text outside it).
pub fn clean_xmp(raw: &[u8]) -> Result<Vec<u8>, String> {
    let keep = |b: &u8| *b != 0 && !b.is_ascii_whitespace();
    let start = raw.iter().position(keep).unwrap_or(raw.len());
    let end = raw.iter().rposition(keep).map_or(start, |i| i + 1);
    let x = &raw[start..end];
    if x.is_empty() {
        return Err("the XMP packet is empty".into());
    }
    std::str::from_utf8(x).map_err(|e| format!("the XMP packet is not UTF-8: {e}"))?;
    xml_well_formed(x).map_err(|e| format!("the XMP packet is not well-formed XML: {e}"))?;
    Ok(x.to_vec())
}

/// Whether `x` is one well-formed XML document.
fn xml_well_formed(x: &[u8]) -> Result<(), String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(x);
    reader.config_mut().check_end_names = true;
    reader.config_mut().check_comments = true;
    let (mut depth, mut roots) = (0usize, 0usize);
    let at = |r: &quick_xml::Reader<&[u8]>| r.error_position();
    loop {
        let ev = reader
            .read_event()
            .map_err(|e| format!("{e} (near byte {})", at(&reader)))?;
        let attrs = |e: &quick_xml::events::BytesStart| {
            e.attributes()
                .with_checks(true)
                .try_for_each(|a| a.map(drop))
                .map_err(|e| format!("attribute: {e}"))
        };
        match ev {
            Event::Start(e) => {
                attrs(&e)?;
                roots += usize::from(depth == 0);
                depth += 1;
            }
            Event::Empty(e) => {
                attrs(&e)?;
                roots += usize::from(depth == 0);
            }
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::Text(t) if depth == 0 && t.chars().any(|c| !c.is_ascii_whitespace()) => {
                return Err("text outside the root element".into());
            }
            Event::CData(_) if depth == 0 => {
                return Err("CDATA outside the root element".into());
            }
            Event::GeneralRef(r) => {
                if depth == 0 {
                    return Err("a reference outside the root element".into());
                }
                let known = matches!(&*r, "amp" | "lt" | "gt" | "apos" | "quot");
                if !known && !matches!(r.resolve_char_ref(), Ok(Some(_))) {
                    return Err(format!("unknown entity &{};", &*r));
                }
            }
            Event::Eof => break,
            _ => {}
        }
        if roots > 1 {
            return Err("more than one root element".into());
        }
    }
    match (depth, roots) {
        (0, 1) => Ok(()),
        (0, _) => Err("no root element".into()),
        _ => Err("unclosed elements at the end".into()),
    }
}

/// Size of the `jp2c` box header written before the codestream: 8 bytes (32-bit LBox)
/// when the codestream cannot pass 4 GiB, else 16 (LBox = 1 and a 64-bit XLBox).
pub fn jp2c_header_len(large: bool) -> usize {
    if large {
        16
    } else {
        8
    }
}

/// The `jp2c` box header for a codestream of `codestream_len` bytes, in the form chosen
/// beforehand. `None` when a short header was chosen and the codestream is too long.
pub fn jp2c_header(codestream_len: u64, large: bool) -> Option<Vec<u8>> {
    let mut v = Vec::with_capacity(16);
    if large {
        v.extend_from_slice(&1u32.to_be_bytes());
        v.extend_from_slice(b"jp2c");
        v.extend_from_slice(&(codestream_len + 16).to_be_bytes());
    } else {
        let len = u32::try_from(codestream_len + 8).ok()?;
        v.extend_from_slice(&len.to_be_bytes());
        v.extend_from_slice(b"jp2c");
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jp2c_header_forms() {
        assert_eq!(
            jp2c_header(100, false).unwrap(),
            [0, 0, 0, 108, b'j', b'p', b'2', b'c']
        );
        let big = jp2c_header(5 << 30, true).unwrap();
        assert_eq!(&big[..8], &[0, 0, 0, 1, b'j', b'p', b'2', b'c']);
        assert_eq!(
            u64::from_be_bytes(big[8..16].try_into().unwrap()),
            (5 << 30) + 16
        );
        assert!(jp2c_header(5 << 30, false).is_none());
    }

    #[test]
    fn boxes_start_with_signature_and_ftyp() {
        let h = Header {
            width: 10,
            height: 20,
            comps: 4,
            prec: 8,
            colour: Some(Colour::Rgb),
            extra: Some(Extra::Alpha),
            ..Header::default()
        };
        let b = leading_boxes(&h);
        assert_eq!(
            &b[..12],
            &[0, 0, 0, 12, b'j', b'P', b' ', b' ', 13, 10, 0x87, 10]
        );
        assert_eq!(&b[16..20], b"ftyp");
        let jp2h = b.windows(4).position(|w| w == b"jp2h").unwrap();
        assert_eq!(&b[jp2h + 8..jp2h + 12], b"ihdr");
        assert!(b.windows(4).any(|w| w == b"cdef"));
    }

    #[test]
    fn xmp_is_trimmed_and_checked() {
        let good = br#"<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/"><a b="&amp;&#65;"/></x:xmpmeta><?xpacket end="w"?>"#;
        let mut padded = b"\n ".to_vec();
        padded.extend_from_slice(good);
        padded.extend_from_slice(b"\n  \0\0\0");
        assert_eq!(clean_xmp(&padded).unwrap(), good.to_vec());
        for bad in [
            &b"<a><b></a>"[..],
            b"<a></a><b/>",
            b"<a x='1' x='2'/>",
            b"<a>&nbsp;</a>",
            b"<a>",
            b"text",
            b"\0\0",
            b"<a>\xff</a>",
            b"<a/>trailing",
        ] {
            assert!(clean_xmp(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn icc_restriction() {
        assert!(!icc_is_restricted(b"short", Colour::Rgb));
    }
}
