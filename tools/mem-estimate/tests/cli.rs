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

#[test]
fn special_files_and_awkward_paths_are_records_never_hangs() {
    let dir = testkit::tempdir();
    let d = dir.path();
    let tif = data("tiff/rgb-3c-8b.tiff");
    let spaced = d.join("scans é ü/page one.tif");
    std::fs::create_dir_all(spaced.parent().unwrap()).unwrap();
    std::fs::copy(&tif, &spaced).unwrap();
    let fifo = d.join("fifo");
    let st = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(st.is_ok_and(|s| s.success()), "mkfifo");
    // A directory symlink pointing up makes a loop; --recursive must not follow it.
    std::os::unix::fs::symlink("..", spaced.parent().unwrap().join("up")).unwrap();
    std::os::unix::fs::symlink(&spaced, d.join("link.tif")).unwrap();

    let input = format!("{}\n{}\n", spaced.display(), fifo.display());
    let out = testkit::run_bounded(
        std::path::Path::new(env!("CARGO_BIN_EXE_mem-estimate")),
        &[],
        &input,
        std::time::Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(1));
    let recs = ndjson(&out.stdout);
    assert_eq!(recs[0]["path"], spaced.to_str().unwrap());
    assert_eq!(recs[0]["format"], "tiff");
    assert_eq!(recs[1]["error"]["kind"], "unsupported");
    assert!(
        recs[1]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("named pipe"),
        "{}",
        recs[1]
    );

    // -r over the tree: the FIFO is not a file to probe, the loop is not followed.
    let out = testkit::run_bounded(
        std::path::Path::new(env!("CARGO_BIN_EXE_mem-estimate")),
        &["-r", d.to_str().unwrap()],
        "",
        std::time::Duration::from_secs(60),
    );
    let paths: Vec<String> = ndjson(&out.stdout)
        .iter()
        .map(|r| r["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        paths,
        [
            d.join("link.tif").display().to_string(),
            spaced.display().to_string()
        ]
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn unreadable_files_and_directories_are_error_records() {
    use std::os::unix::fs::PermissionsExt;
    let dir = testkit::tempdir();
    let d = dir.path();
    // The unprivileged user must reach the tree.
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    let tif = data("tiff/rgb-3c-8b.tiff");
    for sub in ["a", "b/locked"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
        std::fs::copy(&tif, d.join(sub).join("x.tif")).unwrap();
    }
    std::fs::set_permissions(d.join("b"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(d.join("a/x.tif"), std::fs::Permissions::from_mode(0o000)).unwrap();
    std::fs::set_permissions(d.join("b/locked"), std::fs::Permissions::from_mode(0o000)).unwrap();

    let mut cmd = testkit::unprivileged(env!("CARGO_BIN_EXE_mem-estimate"));
    cmd.args(["-r", d.to_str().unwrap()]);
    let out = testkit::run_cmd(cmd, "");
    let recs = ndjson(&out.stdout);
    assert_eq!(recs.len(), 2, "{recs:?}");
    assert_eq!(recs[0]["path"], d.join("a/x.tif").to_str().unwrap());
    assert_eq!(recs[0]["error"]["kind"], "io");
    assert_eq!(recs[1]["path"], d.join("b/locked").to_str().unwrap());
    assert_eq!(recs[1]["error"]["kind"], "io");
    let message = recs[1]["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("cannot list directory"), "{message}");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 2, "{stderr}");
    assert!(
        stderr.contains("b/locked: cannot list directory"),
        "{stderr}"
    );
}
