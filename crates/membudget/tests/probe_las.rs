//! The LAS/LAZ/COPC probe against laspy (with lazrs) on every sample point cloud.

use membudget::probe::{las::LasInfo, probe_path, Detail, Format};
use serde_json::Value;
use std::path::PathBuf;

/// Every LAS/LAZ file of the shared sample data.
fn samples() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["laz", "laz/ign"] {
        for e in std::fs::read_dir(testkit::data(dir)).expect("read sample dir") {
            let p = e.expect("dir entry").path();
            if p.extension().is_some_and(|x| x == "las" || x == "laz") {
                files.push(p);
            }
        }
    }
    files.sort();
    assert!(files.len() >= 12, "expected the shared LAS/LAZ samples");
    files
}

/// laspy's view of each header, as JSON, one line per file.
const LASPY: &str = r#"
import json, sys, laspy
for path in sys.argv[1:]:
    with laspy.open(path) as r:
        h = r.header
        vlrs = [(v.user_id, v.record_id) for v in h.vlrs]
        evlrs = [(v.user_id, v.record_id) for v in (h.evlrs or [])]
        print(json.dumps({
            "path": path,
            "version": f"{h.version.major}.{h.version.minor}",
            "point_format": h.point_format.id,
            "point_count": int(h.point_count),
            "record_length": h.point_format.size,
            "mins": [repr(float(v)) for v in h.mins],
            "maxs": [repr(float(v)) for v in h.maxs],
            "scales": [repr(float(v)) for v in h.scales],
            "offsets": [repr(float(v)) for v in h.offsets],
            "extra_names": list(h.point_format.extra_dimension_names),
            "copc": ("copc", 1) in vlrs,
            "laszip": ("laszip encoded", 22204) in vlrs,
            "wkt": ("LASF_Projection", 2112) in vlrs + evlrs,
            "geotiff": ("LASF_Projection", 34735) in vlrs,
            "eb_vlrs": vlrs.count(("LASF_Spec", 4)),
        }))
"#;

#[test]
fn las_headers_match_laspy() {
    let Some(py) = testkit::python(&["laspy", "lazrs"]) else {
        return;
    };
    let files = samples();
    let expected = testkit::python_records(&py, LASPY, &files);
    for want in expected {
        let path = PathBuf::from(want["path"].as_str().expect("path"));
        let probe = probe_path(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let Detail::Las(info) = &probe.detail else {
            panic!("{}: not a LAS detail", path.display())
        };
        let ctx = path.display();
        assert_eq!(info.version, want["version"].as_str().unwrap(), "{ctx}");
        assert_eq!(
            u64::from(info.point_format),
            want["point_format"].as_u64().unwrap(),
            "{ctx}"
        );
        assert_eq!(
            info.point_count,
            want["point_count"].as_u64().unwrap(),
            "{ctx}"
        );
        assert_eq!(
            u64::from(info.record_length),
            want["record_length"].as_u64().unwrap(),
            "{ctx}"
        );
        // Python prints floats as repr strings, which Rust's `parse` reads back exactly
        // (serde_json's float parser may be off by one ulp).
        let floats = |v: &Value| -> Vec<f64> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().parse().unwrap())
                .collect()
        };
        assert_eq!(info.min.to_vec(), floats(&want["mins"]), "{ctx} mins");
        assert_eq!(info.max.to_vec(), floats(&want["maxs"]), "{ctx} maxs");
        assert_eq!(info.scale.to_vec(), floats(&want["scales"]), "{ctx} scales");
        assert_eq!(
            info.offset.to_vec(),
            floats(&want["offsets"]),
            "{ctx} offsets"
        );
        assert_eq!(
            laspy_extra_names(info),
            want["extra_names"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect::<Vec<_>>(),
            "{ctx} extra bytes"
        );
        assert_eq!(
            u64::from(info.extra_bytes_vlrs),
            want["eb_vlrs"].as_u64().unwrap(),
            "{ctx}"
        );
        assert_eq!(info.copc, want["copc"].as_bool().unwrap(), "{ctx}");
        assert_eq!(
            info.crs.contains(&"wkt".to_string()),
            want["wkt"].as_bool().unwrap(),
            "{ctx}"
        );
        assert_eq!(
            info.crs.contains(&"geotiff".to_string()),
            want["geotiff"].as_bool().unwrap(),
            "{ctx}"
        );
        let laszip = want["laszip"].as_bool().unwrap();
        assert_eq!(info.compressed, laszip, "{ctx}");
        let format = match (info.copc, laszip) {
            (true, _) => Format::Copc,
            (false, true) => Format::Laz,
            (false, false) => Format::Las,
        };
        assert_eq!(probe.format, format, "{ctx}");
        let points = probe.points.as_ref().expect("points summary");
        assert_eq!(points.count, info.point_count);
        assert_eq!(points.record_bytes, u32::from(info.record_length));
        assert_eq!(points.bounds[..3], info.min);
        assert_eq!(points.bounds[3..], info.max);
        assert_eq!(probe.bytes, std::fs::metadata(&path).unwrap().len());
    }
}

/// The extra dimension names laspy reports: it reads only the first Extra Bytes VLR and
/// names any extra bytes it leaves undescribed `ExtraBytes`. The probe reports every VLR's
/// fields, so the comparison takes the first VLR's and adds the same remainder.
fn laspy_extra_names(info: &LasInfo) -> Vec<String> {
    let first: Vec<_> = info.extra_bytes.iter().filter(|f| f.vlr == 0).collect();
    let described: u32 = first.iter().map(|f| f.bytes).sum();
    let mut names: Vec<String> = first.iter().map(|f| f.name.clone()).collect();
    if described < u32::from(info.extra_bytes_length) {
        names.push("ExtraBytes".into());
    }
    names
}

#[test]
fn several_extra_byte_vlrs_are_all_reported() {
    let probe = probe_path(&testkit::data(
        "laz/ign/las_with_several_extra_byte_bloc.laz",
    ))
    .expect("probe");
    let Detail::Las(info) = probe.detail else {
        panic!("not LAS")
    };
    assert_eq!(info.extra_bytes_vlrs, 2);
    let names: Vec<(&str, &str, u32)> = info
        .extra_bytes
        .iter()
        .map(|f| (f.name.as_str(), f.data_type.as_str(), f.vlr))
        .collect();
    assert_eq!(names, [("Deviation", "u16", 0), ("confidence", "u8", 1)]);
    assert_eq!(info.extra_bytes_length, 3);
}

#[test]
fn extra_bytes_types_of_extrabytes_laz() {
    let probe = probe_path(&testkit::data("laz/extrabytes.laz")).expect("probe");
    let Detail::Las(info) = probe.detail else {
        panic!("not LAS")
    };
    let fields: Vec<(&str, &str, u8, u32)> = info
        .extra_bytes
        .iter()
        .map(|f| (f.name.as_str(), f.data_type.as_str(), f.elements, f.bytes))
        .collect();
    // The same sizes laspy gives (Colors 3 x u16, Reserved 7 raw bytes, Flags 2 x i8...).
    assert_eq!(
        fields,
        [
            ("Colors", "u16", 3, 6),
            ("Reserved", "undocumented", 1, 7),
            ("Flags", "i8", 2, 2),
            ("Intensity", "u32", 1, 4),
            ("Time", "u64", 1, 8),
        ]
    );
    assert_eq!(info.extra_bytes_length, 27);
}

#[test]
fn variable_chunks_with_an_empty_chunk_table_are_corrupt() {
    // Found by fuzz/ (laz_reader): the probe let it through and the laz decoder then
    // indexed the empty table and panicked.
    let p = testkit::workspace_root()
        .join("fuzz/regressions/laz_reader/variable-chunks-empty-table.laz");
    let e = membudget::probe::probe_path(&p).unwrap_err();
    assert_eq!(e.kind, membudget::ErrorKind::Corrupt, "{e}");
    assert!(e.message.contains("chunk table"), "{e}");
}
