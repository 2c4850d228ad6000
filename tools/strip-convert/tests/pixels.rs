//! strip-convert's sample reading against tifffile: every bit depth from 1 to 16, one and
//! three samples per pixel, strips and tiles, odd widths, uncompressed and compressed,
//! and the fuzz cases of issue 18.

use std::path::PathBuf;

mod common;
use common::*;

/// Writes TIFFs of 1 to 16 bits, 1 and 3 samples, strips and tiles, odd widths, both
/// byte orders; uncompressed (c1), Deflate (c8) and LZW (c5) (the stored chunks recompressed, since
/// tifffile writes packed samples only uncompressed). Prints one file name a line.
const BIT_DEPTHS: &str = r#"
import sys, os, zlib, numpy as np, tifffile, imagecodecs
out = sys.argv[1]
rng = np.random.default_rng(18)

def restore(path, codec):
    with tifffile.TiffFile(path, mode='r+b') as t:
        p = t.pages[0]
        fh = t.filehandle
        chunks = []
        for o, c in zip(p.dataoffsets, p.databytecounts):
            fh.seek(o)
            raw = fh.read(c)
            chunks.append(zlib.compress(raw) if codec == 8 else imagecodecs.lzw_encode(raw))
        fh.seek(0, 2)
        pos = []
        for d in chunks:
            pos.append(fh.tell())
            fh.write(d)
        tiled = p.is_tiled
        p.tags['TileOffsets' if tiled else 'StripOffsets'].overwrite(pos)
        p.tags['TileByteCounts' if tiled else 'StripByteCounts'].overwrite([len(d) for d in chunks])
        p.tags['Compression'].overwrite(codec)

for bits in range(1, 17):
    for spp in (1, 3):
        for tile in (None, (16, 32)):
            for codec in (1, 8, 5):
                w = 37 if tile is None else 45
                shape = (21, w) if spp == 1 else (21, w, spp)
                a = rng.integers(0, 2 ** bits, shape).astype(np.uint8 if bits <= 8 else np.uint16)
                name = f"b{bits}-s{spp}-{'tile' if tile else 'strip'}-c{codec}.tif"
                path = os.path.join(out, name)
                tifffile.imwrite(path, a, bitspersample=bits, tile=tile, rowsperstrip=5,
                                 byteorder='<' if bits % 2 else '>',
                                 photometric='rgb' if spp == 3 else 'minisblack')
                if codec != 1:
                    restore(path, codec)
                print(name)
"#;

#[test]
fn every_bit_depth_from_1_to_16_matches_tifffile() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["tifffile", "numpy", "imagecodecs"]) else {
        return;
    };
    let names = testkit::run_python(&py, BIT_DEPTHS, &[dir.path().to_str().unwrap()]);
    let files: Vec<PathBuf> = names.lines().map(|n| dir.path().join(n)).collect();
    assert_eq!(files.len(), 16 * 2 * 2 * 3);
    let out = dir.path().join("out");
    let mut args = vec!["-o".to_string(), out.to_str().unwrap().to_string()];
    args.extend(files.iter().map(|f| f.to_str().unwrap().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (records, _) = convert(&args);
    assert_eq!(records.len(), files.len());
    let mut checked = Vec::new();
    // Every depth, compressed or not: this crate's codecs read 9 to 15 bits and packed RGB
    // (the tiff crate's decoder refused them when compressed).
    for (r, f) in records.iter().zip(&files) {
        let name = f.file_name().unwrap().to_str().unwrap();
        assert_eq!(section(r)["status"], "ok", "{name}: {r}");
        checked.push((name.to_string(), f.clone(), output_of(r)));
    }
    let sources: Vec<PathBuf> = checked.iter().map(|c| c.1.clone()).collect();
    let want = tiff_samples_many(&py, &sources, 0);
    for ((name, _, jp2), (want, shape)) in checked.iter().zip(want) {
        let (got, got_shape) = jp2_samples(jp2);
        assert_eq!(shape, got_shape, "{name}");
        let diff = want.iter().zip(&got).filter(|(a, b)| a != b).count();
        assert_eq!(diff, 0, "{name}: {diff} samples differ from tifffile");
    }
}

/// Issue 18's files: a valid 3-bit gray TIFF converts exactly; a damaged 7-bit one (its
/// strip starts at byte 0, inside the header) is a corrupt-file record, not a panic.
#[test]
fn fuzz_cases_of_odd_bit_depths() {
    let dir = testkit::tempdir();
    let valid = testkit::data("fuzz/strip-convert/gray-3bit.tif");
    let damaged = testkit::data("fuzz/strip-convert/damaged-7bit.tif");
    let out = tool()
        .args(["-o", dir.path().to_str().unwrap()])
        .arg(&valid)
        .arg(&damaged)
        .run();
    let records = testkit::ndjson(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{records:#?}");
    assert_eq!(records.len(), 2);
    assert_eq!(section(&records[0])["status"], "ok", "{}", records[0]);
    assert_eq!(records[1]["error"]["kind"], "corrupt", "{}", records[1]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    // Only the valid file has an output.
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 1);
    let Some(py) = testkit::python(&["tifffile", "numpy"]) else {
        return;
    };
    let (want, shape) = tiff_samples(&py, &valid, 0);
    let (got, got_shape) = jp2_samples(&output_of(&records[0]));
    assert_eq!(shape, got_shape);
    assert_eq!(shape, [4, 64, 1]);
    assert!(want == got, "gray-3bit differs from tifffile");
    assert!(want.contains(&7), "3-bit values reach 7");
    if let Some((valid, xml)) = jpylyzer(&output_of(&records[0])) {
        assert!(valid, "{xml}");
    }
}

/// FillOrder=2 files (a TIFF writer by hand: tifffile writes no FillOrder tag), their
/// stored bytes bit-reversed as such writers store them: 4-bit and big-endian 16-bit
/// uncompressed, 8-bit RGB Deflate (reversed after compression), and the shared Group 4
/// fax sample. Each is checked against tifffile's reading of the original samples.
const FILL_ORDER: &str = r#"
import sys, zlib, struct, numpy as np, tifffile, imagecodecs
out, fax = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(9)

def write_tiff(path, w, h, bps, spp, compression, photometric, strips, rps, be=False):
    e = '>' if be else '<'
    pack = lambda ty, vals: b''.join(struct.pack(e + ('H' if ty == 3 else 'I'), v) for v in vals)
    tags = [(256, 4, [w]), (257, 4, [h]), (258, 3, [bps] * spp), (259, 3, [compression]),
            (262, 3, [photometric]), (266, 3, [2]), (273, 4, None), (277, 3, [spp]),
            (278, 4, [rps]), (279, 4, [len(s) for s in strips]), (284, 3, [1])]
    ifd_end = 8 + 2 + 12 * len(tags) + 4
    out_of_line = sum(len(pack(t, v)) for _, t, v in tags if v and len(pack(t, v)) > 4)
    out_of_line += 4 * len(strips) if len(strips) > 1 else 0
    pos, offsets = ifd_end + out_of_line, []
    for s in strips:
        offsets.append(pos)
        pos += len(s)
    ifd, extra = struct.pack(e + 'H', len(tags)), b''
    for tag, ty, vals in tags:
        raw = pack(ty, vals or offsets)
        ifd += struct.pack(e + 'HHI', tag, ty, len(vals or offsets))
        if len(raw) <= 4:
            ifd += raw.ljust(4, b'\0')
        else:
            ifd += struct.pack(e + 'I', ifd_end + len(extra))
            extra += raw
    head = (b'MM\0*' if be else b'II*\0') + struct.pack(e + 'I', 8)
    open(path, 'wb').write(head + ifd + b'\0\0\0\0' + extra + b''.join(strips))

rev = lambda b: imagecodecs.bitorder_encode(bytes(b))
a = rng.integers(0, 16, (13, 21)).astype(np.uint8)
strips = [rev(b''.join(imagecodecs.packints_encode(r, 4) for r in a[i:i + 5])) for i in range(0, 13, 5)]
write_tiff(f'{out}/fo-gray4.tif', 21, 13, 4, 1, 1, 1, strips, 5)
assert (tifffile.imread(f'{out}/fo-gray4.tif') == a).all()
a = rng.integers(0, 65536, (13, 21)).astype('>u2')
write_tiff(f'{out}/fo-gray16.tif', 21, 13, 16, 1, 1, 1,
           [rev(a[i:i + 5].tobytes()) for i in range(0, 13, 5)], 5, be=True)
assert (tifffile.imread(f'{out}/fo-gray16.tif') == a).all()
a = rng.integers(0, 256, (13, 21, 3)).astype(np.uint8)
write_tiff(f'{out}/fo-rgb8-deflate.tif', 21, 13, 8, 3, 8, 2,
           [rev(zlib.compress(a[i:i + 5].tobytes())) for i in range(0, 13, 5)], 5)
assert (tifffile.imread(f'{out}/fo-rgb8-deflate.tif') == a).all()
t = tifffile.TiffFile(fax)
p = t.pages[0]
strips = []
for o, c in zip(p.dataoffsets, p.databytecounts):
    t.filehandle.seek(o)
    strips.append(rev(t.filehandle.read(c)))
write_tiff(f'{out}/fo-fax4.tif', p.shape[1], p.shape[0], 1, 1, 4, p.photometric, strips, p.rowsperstrip)
assert (tifffile.imread(f'{out}/fo-fax4.tif') == p.asarray()).all()
print('\n'.join(['fo-gray4.tif', 'fo-gray16.tif', 'fo-rgb8-deflate.tif', 'fo-fax4.tif']))
"#;

#[test]
fn fill_order_2_is_honoured_for_every_compression() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["tifffile", "numpy", "imagecodecs"]) else {
        return;
    };
    let fax = testkit::data("tiff/fax4.tiff");
    let names = testkit::run_python(
        &py,
        FILL_ORDER,
        &[dir.path().to_str().unwrap(), fax.to_str().unwrap()],
    );
    let files: Vec<PathBuf> = names.lines().map(|n| dir.path().join(n)).collect();
    assert_eq!(files.len(), 4);
    let mut args = vec!["-o", dir.path().to_str().unwrap()];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    let (records, code) = convert(&args);
    assert_eq!(code, 0, "{records:#?}");
    let want = tiff_samples_many(&py, &files, 0);
    for ((r, f), (want, shape)) in records.iter().zip(&files).zip(want) {
        let (got, got_shape) = jp2_samples(&output_of(r));
        assert_eq!(shape, got_shape, "{}", f.display());
        assert!(want == got, "{}: differs from tifffile", f.display());
    }
}

/// 16-bit RGBA with associated (premultiplied) alpha keeps every sample exactly as
/// stored, in each layout: strips and tiles, chunky and planar, both byte orders,
/// Deflate with the horizontal predictor.
#[test]
fn associated_alpha_16_bit_is_kept_as_stored() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["tifffile", "numpy", "imagecodecs"]) else {
        return;
    };
    let names = testkit::run_python(
        &py,
        r#"
import sys, itertools, numpy as np, tifffile
rng = np.random.default_rng(3)
y, x = np.mgrid[0:40, 0:50]
alpha = rng.integers(0, 65536, (40, 50))
col = [(x * 1000 + y * 7) % 65536, (x * y * 13) % 65536, rng.integers(0, 65536, (40, 50))]
a = np.stack([np.minimum(c, alpha) for c in col] + [alpha], -1).astype(np.uint16)
for i, (bo, planar, tile, comp) in enumerate(itertools.product(
        '<>', ['contig', 'separate'], [None, (16, 16)], [None, 'zlib'])):
    d = a if planar == 'contig' else np.moveaxis(a, -1, 0)
    name = f'{sys.argv[1]}/alpha{i}.tif'
    tifffile.imwrite(name, d, photometric='rgb', extrasamples=['assocalpha'], byteorder=bo,
                     planarconfig=planar, tile=tile, compression=comp,
                     predictor=2 if comp else None, rowsperstrip=7)
    print(name)
"#,
        &[dir.path().to_str().unwrap()],
    );
    let files: Vec<PathBuf> = names.lines().map(PathBuf::from).collect();
    let out = dir.path().join("out");
    let mut args = vec!["-o", out.to_str().unwrap(), "--verify"];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    let (records, code) = convert(&args);
    assert_eq!(code, 0, "{records:#?}");
    let want = tiff_samples_many(&py, &files, 0);
    for ((r, f), (want, shape)) in records.iter().zip(&files).zip(want) {
        let (got, got_shape) = jp2_samples(&output_of(r));
        assert_eq!(shape, got_shape);
        assert!(want == got, "{}: differs from tifffile", f.display());
        if let Some((valid, xml)) = jpylyzer(&output_of(r)) {
            assert!(valid, "{xml}");
            // The channel definition says premultiplied opacity (cdef Typ 2).
            assert!(xml.contains("premultiplied opacity"), "{xml}");
        }
    }
}

/// JPEG-compressed YCbCr (strips and tiles, 1x1 and 2x2 chroma subsampling, and the
/// shared sample) decodes to RGB as libtiff's JPEGCOLORMODE_RGB does, which tifffile
/// (libjpeg-turbo) gives. Two JPEG decoders may differ: chroma upsampling and the IDCT
/// are the decoder's choice, so the tolerance is at most 6 levels on any sample and a
/// mean absolute difference below 0.5 (measured: 4 and 0.15 on the shared sample);
/// unconverted YCbCr is off by up to 158 with a mean of 62.
#[test]
fn jpeg_ycbcr_decodes_to_rgb_like_libtiff() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["tifffile", "numpy", "imagecodecs"]) else {
        return;
    };
    let names = testkit::run_python(
        &py,
        r#"
import sys, numpy as np, tifffile
y, x = np.mgrid[0:77, 0:93]
a = np.stack([(x * 3 + y) % 256, (y * 5) % 256, (x * y // 9) % 256], -1).astype(np.uint8)
for sub in [(1, 1), (2, 2)]:
    for tile in [None, (32, 48)]:
        name = f"{sys.argv[1]}/ycc{sub[0]}{'t' if tile else 's'}.tif"
        tifffile.imwrite(name, a, photometric='ycbcr', compression='jpeg', compressionargs={'level': 95},
                         subsampling=sub, tile=tile, rowsperstrip=16)
        print(name)
"#,
        &[dir.path().to_str().unwrap()],
    );
    let mut files: Vec<PathBuf> = names.lines().map(PathBuf::from).collect();
    files.push(testkit::data("tiff/tiled-jpeg-ycbcr.tif"));
    let out = dir.path().join("out");
    let mut args = vec!["-o", out.to_str().unwrap()];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    let (records, code) = convert(&args);
    assert_eq!(code, 0, "{records:#?}");
    let want = tiff_samples_many(&py, &files, 0);
    for ((r, f), (want, shape)) in records.iter().zip(&files).zip(want) {
        let (got, got_shape) = jp2_samples(&output_of(r));
        assert_eq!(shape, got_shape);
        let diffs: Vec<u32> = want
            .iter()
            .zip(&got)
            .map(|(&a, &b)| u32::from(a.abs_diff(b)))
            .collect();
        let max = diffs.iter().max().copied().unwrap_or(0);
        let mean = diffs.iter().sum::<u32>() as f64 / diffs.len() as f64;
        assert!(
            max <= 6 && mean < 0.5,
            "{}: max {max}, mean {mean:.3} against tifffile",
            f.display()
        );
        if let Some((valid, xml)) = jpylyzer(&output_of(r)) {
            assert!(valid, "{xml}");
        }
    }
}

/// XMP as camera files store it (trailing NULs and newlines) is trimmed and written, and
/// jpylyzer finds it well-formed; an ill-formed packet is left out with a warning in the
/// record; `--no-xmp` leaves it out always.
#[test]
fn xmp_is_trimmed_checked_or_left_out() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["tifffile", "numpy", "jpylyzer"]) else {
        return;
    };
    let packet = r#"<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" dc:format="image/tiff"/></rdf:RDF></x:xmpmeta><?xpacket end="w"?>"#;
    testkit::run_python(
        &py,
        r#"
import sys, numpy as np, tifffile
a = np.arange(30 * 20, dtype=np.uint8).reshape(20, 30)
good = sys.argv[2].encode() + b'\n\x00\x00\x00'
bad = b'<x:xmpmeta><unclosed></x:xmpmeta>\x00'
for name, x in [('nul.tif', good), ('bad.tif', bad)]:
    tifffile.imwrite(sys.argv[1] + '/' + name, a, extratags=[(700, 'B', len(x), x, True)])
"#,
        &[dir.path().to_str().unwrap(), packet],
    );
    let nul = dir.path().join("nul.tif");
    let bad = dir.path().join("bad.tif");
    let out = dir.path().join("out");
    let (records, code) = convert(&[
        "-o",
        out.to_str().unwrap(),
        nul.to_str().unwrap(),
        bad.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{records:#?}");
    let file = std::fs::read(output_of(&records[0])).unwrap();
    let at = file
        .windows(packet.len())
        .position(|w| w == packet.as_bytes())
        .expect("XMP packet copied");
    // The packet ends the uuid box: no NUL or newline copied after it.
    assert!(!file[at + packet.len()..].starts_with(b"\n"));
    assert!(section(&records[0])["warning"].is_null());
    let (valid, xml) = jpylyzer(&output_of(&records[0])).unwrap();
    assert!(valid, "{xml}");
    assert!(!xml.contains(">False<"), "{xml}");
    let w = section(&records[1])["warning"].as_str().unwrap_or_default();
    assert!(w.contains("not well-formed"), "{}", records[1]);
    let file = std::fs::read(output_of(&records[1])).unwrap();
    assert!(!file.windows(10).any(|w| w == b"<unclosed>"));
    let (valid, xml) = jpylyzer(&output_of(&records[1])).unwrap();
    assert!(valid, "{xml}");
    // --no-xmp: left out, no warning.
    let (records, code) = convert(&[
        "-f",
        "--no-xmp",
        "-o",
        out.to_str().unwrap(),
        nul.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{records:#?}");
    let file = std::fs::read(output_of(&records[0])).unwrap();
    assert!(!file.windows(9).any(|w| w == b"x:xmpmeta"));
}

/// `--verify` reads the source through libtiff, not through the reader that made the
/// output: every layout here verifies `ok` against libtiff; when the reader is made to
/// convert deliberately wrong (one sample off by one per band, a test-build hook), the
/// verification fails and no output is left; without libtiff the status is `partial`,
/// never `ok`.
#[test]
fn verify_is_independent_of_the_reader() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["tifffile", "numpy", "imagecodecs"]) else {
        return;
    };
    let names = testkit::run_python(&py, BIT_DEPTHS, &[dir.path().to_str().unwrap()]);
    let mut files: Vec<PathBuf> = names
        .lines()
        .filter(|n| {
            ["b3-", "b8-", "b12-", "b16-"]
                .iter()
                .any(|p| n.starts_with(p))
        })
        .filter(|n| n.ends_with("c1.tif") || n.starts_with("b8-") || n.starts_with("b16-"))
        .map(|n| dir.path().join(n))
        .collect();
    for f in [
        "tiff/planar-rgb-u8.tif",
        "tiff/palette-1c-8b.tiff",
        "tiff/fax4.tiff",
        "tiff/tiled-jpeg-ycbcr.tif",
        "tiff/kodim07-lzw.tif",
        "fuzz/strip-convert/gray-3bit.tif",
    ] {
        files.push(testkit::data(f));
    }
    let run = |env: Option<&str>, out: &str| {
        let mut cmd = tool()
            .args(["--verify", "-f", "-o", out])
            .args(&files)
            .env_remove("STRIP_CONVERT_TEST_WRONG_SAMPLES")
            .env_remove("STRIP_CONVERT_TEST_NO_LIBTIFF");
        if let Some(e) = env {
            cmd = cmd.env(e, "1");
        }
        let out = cmd.run();
        (out.records(), out.status.code())
    };
    let out = dir.path().join("out");
    let (records, code) = run(None, out.to_str().unwrap());
    assert_eq!(records.len(), files.len());
    let reference = section(&records[0])["verification"]["reference"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if !reference.starts_with("libtiff") && !testkit::validators_required() {
        eprintln!("skipped: no libtiff ({reference})");
        return;
    }
    assert_eq!(code, Some(0), "{records:#?}");
    for r in &records {
        let v = &section(r)["verification"];
        assert_eq!(v["status"], "ok", "{r}");
        assert!(
            v["reference"].as_str().unwrap().starts_with("libtiff"),
            "{r}"
        );
    }
    if cfg!(debug_assertions) {
        let wrong = dir.path().join("wrong");
        let (records, code) = run(
            Some("STRIP_CONVERT_TEST_WRONG_SAMPLES"),
            wrong.to_str().unwrap(),
        );
        assert_eq!(code, Some(1));
        for r in &records {
            assert_eq!(r["error"]["kind"], "verify", "{r}");
        }
        let left = std::fs::read_dir(&wrong).map_or(0, |d| d.count());
        assert_eq!(left, 0, "no output stays after a failed verification");
        let (records, code) = run(Some("STRIP_CONVERT_TEST_NO_LIBTIFF"), out.to_str().unwrap());
        assert_eq!(code, Some(0), "{records:#?}");
        for r in &records {
            let v = &section(r)["verification"];
            assert_eq!(v["status"], "partial", "{r}");
            assert!(
                v["message"].as_str().unwrap().contains("not independent"),
                "{r}"
            );
        }
    }
}
