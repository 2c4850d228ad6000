//! Every cost model on random and extreme records, read back as `chunk-plan` reads them
//! (`Summary::from_record`): a record is either refused with an error or planned, never
//! a panic or an arithmetic overflow (tests run in debug builds, where overflow panics).

use membudget::cost::{self, Summary};
use membudget::{plan, Budget, Record};
use serde_json::{json, Value};
use testkit::Rng;

const FORMATS: [&str; 11] = [
    "tiff", "jpeg", "png", "jp2", "j2k", "fits", "las", "laz", "copc", "zip", "pdf",
];

fn random_record(rng: &mut Rng) -> Record {
    let mut r = Record::new("x");
    r.set("format", *rng.pick(&FORMATS));
    r.set("bytes", rng.extreme(u64::MAX));
    if rng.below(4) != 0 {
        let u32max = u64::from(u32::MAX);
        r.set(
            "image",
            json!({
                "width": rng.extreme(u64::MAX), "height": rng.extreme(u64::MAX),
                "bands": rng.extreme(u32max), "bits": rng.extreme(u32max),
                "sample_format": *rng.pick(&["uint", "int", "float"]),
                "pages": rng.extreme(u64::MAX),
                "layout": *rng.pick(&["strips", "tiles"]),
                "block": [rng.extreme(u64::MAX), rng.extreme(u64::MAX)],
                "compressed": rng.below(2) == 0,
            }),
        );
    }
    if rng.below(3) == 0 {
        let coord =
            |rng: &mut Rng| *rng.pick(&[0.0, -1e308, 1e308, f64::MAX, f64::MIN, 1e-300, 12.5]);
        let bounds: Vec<f64> = (0..6).map(|_| coord(rng)).collect();
        r.set(
            "points",
            json!({
                "count": rng.extreme(u64::MAX),
                "record_bytes": rng.extreme(u64::from(u32::MAX)),
                "bounds": bounds,
                "compressed": rng.below(2) == 0,
            }),
        );
    }
    if rng.below(3) == 0 {
        r.set(
            "archive",
            json!({
                "entries": rng.extreme(u64::MAX),
                "uncompressed_bytes": rng.extreme(u64::MAX),
                "largest_entry_bytes": rng.extreme(u64::MAX),
                "image_entries": rng.extreme(u64::MAX),
            }),
        );
    }
    if rng.below(3) == 0 {
        let largest = if rng.below(2) == 0 {
            Value::Null
        } else {
            json!([rng.extreme(u64::MAX), rng.extreme(u64::MAX)])
        };
        r.set(
            "document",
            json!({
                "pages": rng.extreme(u64::MAX),
                "image_pages": rng.extreme(u64::MAX),
                "largest_image": largest,
            }),
        );
    }
    r
}

fn exercise(s: &Summary, rng: &mut Rng) {
    for m in cost::models() {
        let _ = m.work(s);
        if !m.applies(s) {
            continue;
        }
        let chunks = m.chunks(s);
        assert!(!chunks.is_empty(), "{}: no chunks for {s:?}", m.name());
        let _ = m.efficient_chunk(s);
        let _ = m.whole_bytes(s);
        for &c in &chunks {
            for w in [1, 2, 64, u32::MAX] {
                let _ = m.peak_bytes(s, c, w);
            }
            let _ = m.describe(s, c);
        }
        let _ = cost::estimate(m.as_ref(), s);
        for budget in [1, 64 << 20, rng.extreme(u64::MAX).max(1), u64::MAX] {
            // Large -j values are plan.rs's own concern (issue 7 item 3): its search is
            // linear in the worker count.
            let jobs = *rng.pick(&[1, 2, 16, 64]);
            if let Ok(p) = plan::plan(m.as_ref(), s, Budget::bytes(budget), jobs) {
                assert!(p.predicted_peak_bytes <= budget, "{}: {p:?}", m.name());
            }
        }
    }
}

#[test]
fn random_and_extreme_records_never_panic_in_any_cost_model() {
    let seed = 0x6d65_6d62_7564_6765;
    let mut rng = Rng::new(seed);
    let mut planned = 0;
    let mut refused = 0;
    for case in 0..20_000 {
        let r = random_record(&mut rng);
        let line = r.to_line();
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(
                || match Summary::from_record(&r) {
                    Ok(Some(s)) => {
                        exercise(&s, &mut rng.clone());
                        true
                    }
                    Ok(None) => false,
                    Err(e) => {
                        assert!(!e.message.is_empty());
                        false
                    }
                },
            ));
        match result {
            Ok(true) => planned += 1,
            Ok(false) => refused += 1,
            Err(_) => panic!("seed {seed:#x}, case {case}: panicked on {line}"),
        }
    }
    // Both paths were taken: the generator is not all-absurd nor all-sane.
    assert!(
        planned > 100 && refused > 100,
        "{planned} planned, {refused} refused"
    );
}

#[test]
fn absurd_dimensions_in_a_record_are_refused() {
    let mut r = Record::new("x.tif");
    r.set("format", "tiff");
    r.set(
        "image",
        json!({"width": u64::MAX, "height": u64::MAX, "bands": u32::MAX, "bits": u32::MAX,
               "sample_format": "uint", "pages": 1, "layout": "strips",
               "block": [u64::MAX, 1], "compressed": false}),
    );
    let e = Summary::from_record(&r).unwrap_err();
    assert_eq!(e.kind, membudget::ErrorKind::Hostile, "{}", e.message);
    // A present but malformed section is an error too, not silently no image.
    r.set("image", json!({"width": -1}));
    let e = Summary::from_record(&r).unwrap_err();
    assert_eq!(e.kind, membudget::ErrorKind::BadRecord, "{}", e.message);
}
