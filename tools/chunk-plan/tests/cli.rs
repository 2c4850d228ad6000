//! chunk-plan as a user runs it: plans from mem-estimate records or plain paths, budgets,
//! `-v` explanations, exit codes.

use testkit::{data, ndjson};

fn run(args: &[&str], stdin: &str) -> testkit::Ran {
    testkit::run_tool(chunk_plan::NAME, args, stdin)
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

/// A made-up TIFF record of `side` x `side` RGB pixels: its work grows with `side`.
fn square(name: &str, side: u64) -> String {
    format!(
        r#"{{"path":"{name}","format":"tiff","bytes":{},"image":{{"width":{side},"height":{side},"bands":3,"bits":8,"sample_format":"uint","pages":1,"layout":"strips","block":[{side},16],"compressed":false}}}}"#,
        3 * side * side
    )
}

#[test]
fn order_sorts_by_work_and_shards_balance_it() {
    let input = [
        square("s.tif", 1000),
        square("l.tif", 8000),
        square("m.tif", 4000),
    ]
    .join("\n");
    let paths = |args: &[&str]| -> Vec<String> {
        let out = run(args, &input);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        ndjson(&out.stdout)
            .iter()
            .map(|r| r["path"].as_str().unwrap().to_string())
            .collect()
    };
    let base = ["--for", "strip-convert", "-m", "1GiB"];
    assert_eq!(paths(&base), ["s.tif", "l.tif", "m.tif"]);
    assert_eq!(
        paths(&[&base[..], &["--order", "largest"]].concat()),
        ["l.tif", "m.tif", "s.tif"]
    );
    assert_eq!(
        paths(&[&base[..], &["--order", "smallest"]].concat()),
        ["s.tif", "m.tif", "l.tif"]
    );
    // Longest processing time first: the 8000² input (4x the 4000² one) alone on one
    // shard, the two smaller ones together on the other.
    let out = run(&[&base[..], &["--shards", "2"]].concat(), &input);
    let shard: Vec<u64> = ndjson(&out.stdout)
        .iter()
        .map(|r| r["plan"]["shard"].as_u64().unwrap())
        .collect();
    assert_eq!(shard.len(), 3);
    assert_eq!(shard[0], shard[2], "{shard:?}");
    assert_ne!(shard[0], shard[1], "{shard:?}");
}

#[test]
fn verbose_says_where_the_budget_and_the_workers_come_from() {
    let out = run(
        &["--for", "strip-convert", "-m", "1GiB", "-j", "2", "-v"],
        &square("v.tif", 20000),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("budget 1.0 GiB (from --memory-limit)"),
        "{stderr}"
    );
    assert!(stderr.contains("at most 2 workers (--jobs)"), "{stderr}");
    assert!(stderr.contains("v.tif: strip-convert: "), "{stderr}");
    let out = run(
        &["--for", "strip-convert", "-m", "1GiB"],
        &square("v.tif", 20000),
    );
    assert!(out.stderr.is_empty(), "silent without -v");
}

#[test]
fn nonsense_numbers_are_usage_errors() {
    for args in [
        ["-j", "0"],
        ["--shards", "0"],
        ["-j", "many"],
        ["--order", "random"],
    ] {
        let out = run(&args, "");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}: no message");
    }
}

#[test]
fn empty_input_is_no_records_and_success() {
    let out = run(&["-m", "1GiB"], "");
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
}

#[test]
fn budgets_beyond_u64_are_refused_before_any_input() {
    let tif = data("tiff/rgb-3c-8b.tiff");
    for m in [
        "18446744073709551616",
        "18446744073709551617",
        "99999999999999999999999999",
        "16777216TiB",
    ] {
        let out = run(&["-m", m, tif.to_str().unwrap()], "");
        assert_eq!(out.status.code(), Some(2), "-m {m}");
        assert!(out.stdout.is_empty(), "-m {m}: a record was written");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("out of range"), "-m {m}: {stderr}");
    }
    // The largest budget there is still works.
    let out = run(&["-m", "18446744073709551615", tif.to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn absurd_image_fields_in_a_record_are_an_error_record_not_an_overflow() {
    let absurd = [
        r#"{"path":"a.tif","format":"tiff","image":{"width":18446744073709551615,"height":18446744073709551615,"bands":4294967295,"bits":4294967295,"sample_format":"uint","pages":18446744073709551615,"layout":"strips","block":[18446744073709551615,18446744073709551615],"compressed":false}}"#,
        r#"{"path":"b.tif","format":"tiff","image":{"width":0,"height":10,"bands":1,"bits":8,"sample_format":"uint","pages":1,"layout":"strips","block":[0,1],"compressed":false}}"#,
        r#"{"path":"c.tif","format":"tiff","image":{"width":"wide"}}"#,
    ];
    let out = run(&["-m", "64MiB"], &format!("{}\n", absurd.join("\n")));
    assert_eq!(out.status.code(), Some(1));
    let recs = ndjson(&out.stdout);
    let kinds: Vec<&str> = recs
        .iter()
        .map(|r| r["error"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["hostile", "corrupt", "bad_record"]);
    assert!(recs.iter().all(|r| r["error"]["tool"] == "chunk-plan"));
}
