//! chunk-plan as a user runs it: plans from mem-estimate records or plain paths, budgets,
//! `-v` explanations, exit codes.

use testkit::{data, ndjson};

fn run(args: &[&str], stdin: &str) -> std::process::Output {
    testkit::run_stdin(
        std::path::Path::new(env!("CARGO_BIN_EXE_chunk-plan")),
        args,
        stdin,
    )
}

#[test]
fn plain_paths_are_probed_then_planned() {
    let tif = data("tiff/rgb-3c-8b.tiff");
    let out = run(
        &["--for", "strip-convert", "-m", "256MiB"],
        &format!("{}\n", tif.display()),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = &ndjson(&out.stdout)[0];
    assert_eq!(r["format"], "tiff");
    let p = &r["plan"]["strip-convert"];
    assert!(p["predicted_peak_bytes"].as_u64().unwrap() <= 256 << 20);
    assert!(
        r["plan"].get("tile-enhance").is_none(),
        "--for limits the tools"
    );
}

#[test]
fn smaller_budget_smaller_tiles_and_verbose_says_why() {
    // A made-up 40000 x 40000 RGB record: chunk-plan plans from the record alone.
    let rec = r#"{"path":"big.tif","format":"tiff","bytes":4800000000,"image":{"width":40000,"height":40000,"bands":3,"bits":8,"sample_format":"uint","pages":1,"layout":"strips","block":[40000,8],"compressed":false}}"#;
    let tile = |budget: &str| {
        let out = run(
            &["--for", "strip-convert", "-m", budget, "-j", "1", "-v"],
            rec,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            stderr.contains("big.tif: strip-convert: tile_side"),
            "{stderr}"
        );
        ndjson(&out.stdout)[0]["plan"]["strip-convert"]["chunk"]
            .as_u64()
            .unwrap()
    };
    let (big, small) = (tile("4GiB"), tile("96MiB"));
    assert!(small < big, "{small} !< {big}");
}

#[test]
fn bad_budget_is_a_usage_error() {
    let out = run(&["-m", "lots"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid memory budget"));
    assert_eq!(run(&["--for", "no-such-tool"], "").status.code(), Some(2));
}

#[test]
fn impossible_budget_exits_3() {
    let tif = data("tiff/rgb-3c-8b.tiff");
    let out = run(
        &["--for", "strip-convert", "-m", "100000"],
        &format!("{}\n", tif.display()),
    );
    assert_eq!(out.status.code(), Some(3));
    let r = &ndjson(&out.stdout)[0];
    assert_eq!(r["error"]["kind"], "budget");
    assert_eq!(r["plan"]["strip-convert"]["error"]["kind"], "budget");
}
