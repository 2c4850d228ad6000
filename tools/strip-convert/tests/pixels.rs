//! strip-convert's sample reading against tifffile: every bit depth from 1 to 16, one and
//! three samples per pixel, strips and tiles, odd widths, uncompressed and compressed,
//! and the fuzz cases of issue 18.

use std::path::PathBuf;

mod common;
use common::*;

/// Writes TIFFs of 1 to 16 bits, 1 and 3 samples, strips and tiles, odd widths, both
/// byte orders; uncompressed (c1) and Deflate (c8, the stored chunks recompressed, since
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
            chunks.append(zlib.compress(raw) if codec == 8 else raw)
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
            for codec in (1, 8):
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

/// Whether the tiff crate decodes this compressed combination (8 and 16 bits, 1 to 7
/// bits of gray); the others must be clear `unsupported` records.
fn compressed_readable(bits: u32, spp: u32) -> bool {
    bits == 8 || bits == 16 || (bits < 8 && spp == 1)
}

#[test]
fn every_bit_depth_from_1_to_16_matches_tifffile() {
    let Some(py) = testkit::python(&["tifffile", "numpy", "imagecodecs"]) else {
        return;
    };
    let dir = testkit::tempdir();
    let names = testkit::run_python(&py, BIT_DEPTHS, &[dir.path().to_str().unwrap()]);
    let files: Vec<PathBuf> = names.lines().map(|n| dir.path().join(n)).collect();
    assert_eq!(files.len(), 16 * 2 * 2 * 2);
    let out = dir.path().join("out");
    let mut args = vec!["-o".to_string(), out.to_str().unwrap().to_string()];
    args.extend(files.iter().map(|f| f.to_str().unwrap().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (records, _) = convert(&args);
    assert_eq!(records.len(), files.len());
    let mut checked = Vec::new();
    for (r, f) in records.iter().zip(&files) {
        let name = f.file_name().unwrap().to_str().unwrap();
        let parts: Vec<&str> = name.trim_end_matches(".tif").split('-').collect();
        let bits: u32 = parts[0][1..].parse().unwrap();
        let spp: u32 = parts[1][1..].parse().unwrap();
        let compressed = parts[3] != "c1";
        if compressed && !compressed_readable(bits, spp) {
            assert_eq!(r["error"]["kind"], "unsupported", "{name}: {r}");
            assert!(
                r["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("uncompressed"),
                "{r}"
            );
            continue;
        }
        assert_eq!(section(r)["status"], "ok", "{name}: {r}");
        checked.push((name.to_string(), f.clone(), output_of(r)));
    }
    // Every uncompressed file, and compressed 1-7-bit gray, 8 and 16 bits.
    assert_eq!(checked.len(), 64 + 2 * (7 + 2 + 2));
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
        .output()
        .unwrap();
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
