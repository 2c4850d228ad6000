//! Hostile inputs: the TIFF fuzz corpus (files that once crashed, hung or exhausted memory
//! in a TIFF decoder) and hand-made JP2/J2K headers with absurd lengths and sizes. Each
//! probe must return (an error or a sane result) without panicking, hanging or allocating
//! much. The hang bound is generous (it catches infinite loops, not slowness).

use membudget::probe::{probe_path, Probe};
use membudget::{Error, ErrorKind};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

/// Far beyond any real probe (microseconds); only a hang reaches it.
const HANG_BOUND: Duration = Duration::from_secs(10);

/// Probes `path` on its own thread; fails the test on a panic or a hang.
fn probe_bounded(path: &Path) -> Result<Probe, Error> {
    let (tx, rx) = mpsc::channel();
    let p = path.to_path_buf();
    let handle = std::thread::spawn(move || {
        let _ = tx.send(probe_path(&p));
    });
    match rx.recv_timeout(HANG_BOUND) {
        Ok(r) => {
            handle.join().expect("probe thread");
            r
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!(
                "{}: probe still running after {HANG_BOUND:?}",
                path.display()
            )
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            panic!("{}: probe panicked", path.display())
        }
    }
}

/// Peak RSS of this process (VmHWM), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kb * 1024
}

/// A sane success: the summary is plausible for a file of this size.
fn check_sane(path: &Path, p: &Probe) {
    let image = p.image.as_ref().expect("raster probe has an image");
    assert!(
        image.width > 0 && image.height > 0 && image.bands > 0 && image.bits > 0,
        "{}: {image:?}",
        path.display()
    );
    assert!(
        image.whole_bytes() <= 1 << 48,
        "{}: {image:?}",
        path.display()
    );
    assert!(
        image.block[0] > 0 && image.block[1] > 0,
        "{}",
        path.display()
    );
}

#[test]
fn tiff_fuzz_corpus_never_panics_hangs_or_bloats() {
    let root = testkit::data("tiff/fuzz");
    let mut files: Vec<PathBuf> = Vec::new();
    for group in ["divide_by_zero", "inf_loop", "oom_crash"] {
        for e in std::fs::read_dir(root.join(group)).unwrap() {
            files.push(e.unwrap().path());
        }
    }
    files.sort();
    assert!(files.len() >= 30, "fuzz corpus missing");
    let (mut ok, mut err) = (0, 0);
    for f in &files {
        match probe_bounded(f) {
            Ok(p) => {
                check_sane(f, &p);
                ok += 1;
            }
            Err(e) => {
                assert!(
                    matches!(
                        e.kind,
                        ErrorKind::Corrupt | ErrorKind::Hostile | ErrorKind::Unsupported
                    ),
                    "{}: unexpected error kind {} ({e})",
                    f.display(),
                    e.kind
                );
                assert!(!e.message.is_empty());
                eprintln!(
                    "{}: {} ({})",
                    f.file_name().unwrap().to_string_lossy(),
                    e,
                    e.kind
                );
                err += 1;
            }
        }
    }
    eprintln!("fuzz corpus: {ok} probed, {err} refused");
    let peak = peak_rss();
    assert!(peak < 512 << 20, "peak RSS {peak} bytes");
}

/// Writes `bytes` to `name` in `dir`.
fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn jp2_box(kind: &[u8; 4], content: &[u8]) -> Vec<u8> {
    let mut v = ((content.len() + 8) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(kind);
    v.extend_from_slice(content);
    v
}

use testkit::j2k_codestream as codestream;

/// A JP2 file: signature, ftyp, jp2h (ihdr + colr) and the given jp2c content.
fn jp2(w: u32, h: u32, comps: u16, jp2c: &[u8]) -> Vec<u8> {
    let mut v = jp2_box(b"jP  ", &[0x0D, 0x0A, 0x87, 0x0A]);
    v.extend(jp2_box(b"ftyp", b"jp2 \0\0\0\0jp2 "));
    let mut ihdr = h.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&comps.to_be_bytes());
    ihdr.extend_from_slice(&[7, 7, 0, 0]);
    let mut hdr = jp2_box(b"ihdr", &ihdr);
    hdr.extend(jp2_box(b"colr", &[1, 0, 0, 0, 0, 0, 16]));
    v.extend(jp2_box(b"jp2h", &hdr));
    v.extend(jp2_box(b"jp2c", jp2c));
    v
}

#[test]
fn hostile_jpeg2000_headers_are_refused() {
    let dir = testkit::tempdir();
    let d = dir.path();

    // The well-formed baseline must probe, or the refusals below prove nothing.
    let good = write(d, "good.jp2", &jp2(100, 50, 3, &codestream(100, 50, 64, 3)));
    let p = probe_bounded(&good).expect("baseline JP2");
    assert_eq!(p.image.as_ref().unwrap().block, [64, 50]);
    let good_raw = write(d, "good.j2k", &codestream(100, 50, 64, 3));
    assert!(probe_bounded(&good_raw).is_ok());

    let mut cases: Vec<(&str, Vec<u8>, ErrorKind)> = Vec::new();
    // A jp2c box claiming 4 GiB in a small file.
    let mut huge = jp2(100, 50, 3, &codestream(100, 50, 64, 3));
    let n = huge.len();
    let jp2c_at = n - codestream(100, 50, 64, 3).len() - 8;
    huge[jp2c_at..jp2c_at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    cases.push(("huge_box.jp2", huge, ErrorKind::Corrupt));
    // An XLBox of 2^63.
    let mut xl = jp2_box(b"jP  ", &[0x0D, 0x0A, 0x87, 0x0A]);
    xl.extend_from_slice(&[0, 0, 0, 1, b'j', b'p', b'2', b'c']);
    xl.extend_from_slice(&(1u64 << 63).to_be_bytes());
    xl.extend_from_slice(&codestream(10, 10, 10, 1));
    cases.push(("xlbox.jp2", xl, ErrorKind::Corrupt));
    // A box of length 0 in the middle (it swallows the rest: no codestream follows).
    let mut zero = jp2_box(b"jP  ", &[0x0D, 0x0A, 0x87, 0x0A]);
    zero.extend(jp2_box(b"ftyp", b"jp2 \0\0\0\0jp2 "));
    zero.extend_from_slice(&[0, 0, 0, 0, b'x', b'm', b'l', b' ']);
    zero.extend(jp2_box(b"jp2c", &codestream(10, 10, 10, 1)));
    cases.push(("zero_len.jp2", zero, ErrorKind::Corrupt));
    // A box length smaller than its own header.
    let mut tiny = jp2_box(b"jP  ", &[0x0D, 0x0A, 0x87, 0x0A]);
    tiny.extend_from_slice(&[0, 0, 0, 3, b'f', b't', b'y', b'p']);
    cases.push(("tiny_len.jp2", tiny, ErrorKind::Corrupt));
    // Absurd SIZ sizes: 2^32-1 square with 16384 components.
    let absurd = codestream(u32::MAX, u32::MAX, u32::MAX, 16384);
    cases.push(("absurd.j2k", absurd.clone(), ErrorKind::Hostile));
    cases.push((
        "absurd.jp2",
        jp2(u32::MAX, u32::MAX, 16384, &absurd),
        ErrorKind::Hostile,
    ));
    // 1x1 tiles over a 2^20 square image: more tiles than a codestream can index.
    cases.push((
        "many_tiles.j2k",
        codestream(1 << 20, 1 << 20, 1, 1),
        ErrorKind::Hostile,
    ));
    // Zero-sized image, zero-sized tiles.
    cases.push(("empty.j2k", codestream(0, 0, 1, 1), ErrorKind::Corrupt));
    cases.push(("zero_tile.j2k", codestream(8, 8, 0, 1), ErrorKind::Corrupt));
    // JP2 header and codestream disagree.
    cases.push((
        "mismatch.jp2",
        jp2(100, 50, 3, &codestream(101, 50, 64, 3)),
        ErrorKind::Corrupt,
    ));
    // Truncated inside SIZ, and a marker length running past the end.
    let cs = codestream(100, 50, 64, 3);
    cases.push(("truncated.j2k", cs[..20].to_vec(), ErrorKind::Corrupt));
    let mut long_marker = cs[..cs.len() - 12].to_vec();
    long_marker.extend_from_slice(&[0xFF, 0x64, 0xFF, 0xFF, 0, 1]);
    cases.push(("long_marker.j2k", long_marker, ErrorKind::Corrupt));
    // 100,000 empty boxes: refused (cap) rather than walked.
    let mut many = jp2_box(b"jP  ", &[0x0D, 0x0A, 0x87, 0x0A]);
    for _ in 0..100_000 {
        many.extend(jp2_box(b"free", &[]));
    }
    cases.push(("many_boxes.jp2", many, ErrorKind::Hostile));

    for (name, bytes, kind) in &cases {
        let path = write(d, name, bytes);
        match probe_bounded(&path) {
            Ok(p) => panic!("{name}: accepted: {p:?}"),
            Err(e) => assert_eq!(e.kind, *kind, "{name}: {e}"),
        }
    }

    // Random byte changes to the baseline: any outcome but a panic, hang or odd kind.
    let base = jp2(100, 50, 3, &codestream(100, 50, 64, 3));
    let mut rng = testkit::Rng::new(0x2545_F491_4F6C_DD1D);
    for i in 0..300 {
        let mut v = base.clone();
        for _ in 0..3 {
            let at = 12 + rng.below((v.len() - 12) as u64) as usize;
            v[at] = rng.next_u64() as u8;
        }
        let path = write(d, &format!("mutant{i}.jp2"), &v);
        match probe_bounded(&path) {
            Ok(p) => check_sane(&path, &p),
            Err(e) => assert!(
                matches!(
                    e.kind,
                    ErrorKind::Corrupt | ErrorKind::Hostile | ErrorKind::Unsupported
                ),
                "mutant {i}: {e} ({})",
                e.kind
            ),
        }
    }
    let peak = peak_rss();
    assert!(peak < 512 << 20, "peak RSS {peak} bytes");
}

#[test]
fn hostile_tiff_headers_are_refused() {
    let dir = testkit::tempdir();
    let d = dir.path();
    // Little-endian classic TIFF with one IFD at offset 8 of `entries` (tag, type, count,
    // value) and `next` as the next-IFD offset.
    fn tiff(entries: &[(u16, u16, u32, u32)], next: u32) -> Vec<u8> {
        let mut v = b"II*\0\x08\0\0\0".to_vec();
        v.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        for &(tag, ty, count, value) in entries {
            v.extend_from_slice(&tag.to_le_bytes());
            v.extend_from_slice(&ty.to_le_bytes());
            v.extend_from_slice(&count.to_le_bytes());
            v.extend_from_slice(&value.to_le_bytes());
        }
        v.extend_from_slice(&next.to_le_bytes());
        v.extend_from_slice(&[0; 16]);
        v
    }
    let page = |w: u32, h: u32| {
        vec![
            (256, 4, 1, w),
            (257, 4, 1, h),
            (258, 3, 1, 8),
            (262, 3, 1, 1),
            (273, 4, 1, 8),
            (278, 4, 1, h),
            (279, 4, 1, 1),
        ]
    };
    let good = write(d, "good.tif", &tiff(&page(4, 4), 0));
    let p = probe_bounded(&good).expect("baseline TIFF");
    assert_eq!(p.image.as_ref().unwrap().block, [4, 4]);

    // The IFD's next pointer points back at itself.
    let looped = write(d, "loop.tif", &tiff(&page(4, 4), 8));
    assert_eq!(probe_bounded(&looped).unwrap_err().kind, ErrorKind::Corrupt);
    // 2^32-1 square, 8-bit gray: beyond 2^48 bytes decoded.
    let absurd = write(d, "absurd.tif", &tiff(&page(u32::MAX, u32::MAX), 0));
    assert_eq!(probe_bounded(&absurd).unwrap_err().kind, ErrorKind::Hostile);
    // Zero width.
    let zero = write(d, "zero.tif", &tiff(&page(0, 4), 0));
    assert_eq!(probe_bounded(&zero).unwrap_err().kind, ErrorKind::Corrupt);
    // A StripOffsets array claiming 2^30 entries, far beyond the file.
    let mut entries = page(4, 4);
    entries[4] = (273, 4, 1 << 30, 8);
    let strips = write(d, "strips.tif", &tiff(&entries, 0));
    let e = probe_bounded(&strips).unwrap_err();
    assert!(
        matches!(e.kind, ErrorKind::Corrupt | ErrorKind::Hostile),
        "{e}"
    );
}

#[test]
fn truncated_and_mutated_samples_never_panic() {
    let mut sources: Vec<PathBuf> = std::fs::read_dir(testkit::data("tiff"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "tif" || x == "tiff"))
        .collect();
    for f in [
        "astronaut.png",
        "page.png",
        "hubble_deep_field.jpg",
        "multipage.tif",
    ] {
        sources.push(testkit::data(&format!("images/{f}")));
    }
    sources.sort();
    let dir = testkit::tempdir();
    // A fixed-seed generator: the same mutations on every run.
    let mut rng = testkit::Rng::new(0x9E37_79B9_7F4A_7C15);
    let mut next = move || rng.next_u64();
    let mut probed = 0;
    for src in &sources {
        // Headers sit in the first few KiB (or point there); mutate only that part.
        let bytes = std::fs::read(src).unwrap();
        let head = &bytes[..bytes.len().min(16 << 10)];
        let mut variants: Vec<Vec<u8>> = [4, 9, 17, 64, 300, head.len() / 2, head.len() - 1]
            .iter()
            .map(|&n| head[..n.min(head.len())].to_vec())
            .collect();
        for _ in 0..12 {
            let mut v = head.to_vec();
            for _ in 0..4 {
                // Keep the magic so the same probe sees the mutant.
                let at = 4 + (next() as usize) % (v.len() - 4);
                v[at] = next() as u8;
            }
            variants.push(v);
        }
        for (i, v) in variants.iter().enumerate() {
            let name = format!("{}.{i}", src.file_name().unwrap().to_string_lossy());
            let path = write(dir.path(), &name, v);
            match probe_bounded(&path) {
                Ok(p) => check_sane(&path, &p),
                Err(e) => assert!(
                    !matches!(e.kind, ErrorKind::Internal | ErrorKind::Io),
                    "{name}: {e} ({})",
                    e.kind
                ),
            }
            probed += 1;
        }
    }
    assert!(probed > 400);
    let peak = peak_rss();
    assert!(peak < 512 << 20, "peak RSS {peak} bytes");
}
