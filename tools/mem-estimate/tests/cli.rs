//! mem-estimate as a user runs it: arguments, stdin, --recursive, --system, exit codes.

use testkit::{data, ndjson};

fn run(args: &[&str], stdin: &str) -> std::process::Output {
    testkit::run_stdin(
        std::path::Path::new(env!("CARGO_BIN_EXE_mem-estimate")),
        args,
        stdin,
    )
}

#[test]
fn paths_from_arguments_and_stdin_give_the_same_records() {
    let tif = data("tiff/rgb-3c-8b.tiff");
    let a = run(&[tif.to_str().unwrap()], "");
    let b = run(&[], &format!("{}\n", tif.display()));
    let c = run(&["-"], &format!("{{\"path\":\"{}\"}}\n", tif.display()));
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert_eq!(a.stdout, b.stdout);
    assert_eq!(
        ndjson(&a.stdout)[0]["estimate"],
        ndjson(&c.stdout)[0]["estimate"]
    );
    let r = &ndjson(&a.stdout)[0];
    assert_eq!(r["format"], "tiff");
    assert_eq!(
        r["image"]["width"].as_u64(),
        Some(r["tiff"]["pages"][0]["width"].as_u64().unwrap())
    );
    let e = &r["estimate"]["strip-convert"];
    assert!(e["min_bytes"].as_u64().unwrap() <= e["preferred_bytes"].as_u64().unwrap());
}

#[test]
fn failures_are_records_and_the_run_goes_on() {
    let tif = data("tiff/rgb-3c-8b.tiff");
    let input = format!("/no/such/file.tif\n{{broken json\n{}\n", tif.display());
    let out = run(&[], &input);
    assert_eq!(out.status.code(), Some(1));
    let recs = ndjson(&out.stdout);
    assert_eq!(recs.len(), 3);
    assert_eq!(recs[0]["error"]["kind"], "not_found");
    assert_eq!(recs[1]["error"]["kind"], "bad_record");
    assert_eq!(recs[1]["line"], "{broken json");
    assert!(recs[2].get("error").is_none());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("mem-estimate: /no/such/file.tif: "),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 2);
}

#[test]
fn recursive_expands_directories_in_order() {
    let dir = data("pdf");
    let out = run(&["--recursive", dir.to_str().unwrap()], "");
    let recs = ndjson(&out.stdout);
    let paths: Vec<&str> = recs.iter().map(|r| r["path"].as_str().unwrap()).collect();
    assert_eq!(paths.len(), 2, "{paths:?}");
    assert!(paths[0] < paths[1]);
    let without = run(&[dir.to_str().unwrap()], "");
    assert_eq!(ndjson(&without.stdout)[0]["error"]["kind"], "unsupported");
}

#[test]
fn system_record_describes_the_machine() {
    let out = run(&["--system"], "");
    assert!(out.status.success());
    let r = &ndjson(&out.stdout)[0];
    let sys = &r["system"];
    assert!(sys["total_bytes"].as_u64().unwrap() > 0);
    assert!(sys["available_bytes"].as_u64().unwrap() <= sys["total_bytes"].as_u64().unwrap());
    assert!(sys["cpus"].as_u64().unwrap() >= 1);
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(run(&["--no-such-flag"], "").status.code(), Some(2));
    assert_eq!(run(&["--help"], "").status.code(), Some(0));
}
