//! mem-estimate as a user runs it: arguments, stdin, --recursive, --system, exit codes.

use testkit::{data, ndjson};

fn run(args: &[&str], stdin: &str) -> testkit::Ran {
    testkit::run_tool(mem_estimate::NAME, args, stdin)
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
    // Every file below the directory, subdirectories included, once each, in name order.
    fn walk(d: &std::path::Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p.to_str().unwrap().to_string());
            }
        }
    }
    let mut want = Vec::new();
    walk(&dir, &mut want);
    want.sort();
    assert!(want.len() > 2 && want.iter().any(|p| p.contains("/jbig2/")));
    assert_eq!(paths, want);
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

/// A directory holding `a.tif` and `b_\xe9.tif` (Latin-1, not UTF-8), copies of a sample.
fn latin1_tree() -> (testkit::TempDir, std::path::PathBuf) {
    let dir = testkit::tempdir();
    let tif = data("tiff/rgb-3c-8b.tiff");
    std::fs::copy(&tif, dir.path().join("a.tif")).unwrap();
    let odd = dir.path().join(testkit::latin1_name("b_", ".tif"));
    std::fs::copy(&tif, &odd).unwrap();
    (dir, odd)
}

#[test]
fn paths_are_bytes_on_stdin_in_arguments_and_directory_walks() {
    use std::os::unix::ffi::OsStrExt;
    let (dir, odd) = latin1_tree();
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_mem-estimate"));
    let a = dir.path().join("a.tif");
    let mut stdin = Vec::new();
    for p in [&a, &odd, &a] {
        stdin.extend_from_slice(p.as_os_str().as_bytes());
        stdin.push(b'\n');
    }
    let check = |out: std::process::Output, want: &[&std::path::Path]| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let recs = ndjson(&out.stdout);
        let paths: Vec<_> = recs.iter().map(testkit::record_path).collect();
        assert_eq!(paths, want);
        for r in &recs {
            assert_eq!(r["format"], "tiff", "{r}");
        }
        recs
    };
    // stdin: three records, the middle one with its exact bytes.
    let recs = check(
        testkit::run_bytes(exe, &[] as &[&str], &stdin),
        &[&a, &odd, &a],
    );
    assert_eq!(recs[1]["path"], odd.to_string_lossy().as_ref());
    assert!(recs[0].get("path_bytes").is_none());
    // Arguments.
    check(
        testkit::run_bytes(exe, &[a.as_os_str(), odd.as_os_str()], b""),
        &[&a, &odd],
    );
    // -r keeps the bytes of the names it finds.
    check(
        testkit::run_bytes(exe, &["-r".as_ref(), dir.path().as_os_str()], b""),
        &[&a, &odd],
    );
    // A record read back downstream keeps them too.
    let first = testkit::run_bytes(exe, &[odd.as_os_str()], b"");
    check(
        testkit::run_bytes(exe, &[] as &[&str], &first.stdout),
        &[&odd],
    );
}

#[test]
fn a_read_error_on_stdin_is_fatal_not_the_end_of_input() {
    // Reading a directory fails with EISDIR: exit 2 with a message, never a quiet 0.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mem-estimate"))
        .stdin(std::fs::File::open("/").unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("mem-estimate: stdin: read error: "),
        "{stderr}"
    );
}

#[test]
fn a_huge_line_is_an_error_record_in_little_memory_and_the_next_is_read() {
    use std::process::{Command, Stdio};
    let tif = data("tiff/rgb-3c-8b.tiff");
    // 600 MB of zeros without a newline, then a real path.
    let mut feed = Command::new("sh")
        .args([
            "-c",
            "head -c 600M /dev/zero; printf '\\n%s\\n' \"$1\"",
            "sh",
        ])
        .arg(&tif)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mem-estimate"));
    cmd.stdin(Stdio::from(feed.stdout.take().unwrap()));
    let (out, peak) = testkit::run_peak(cmd);
    assert!(feed.wait().unwrap().success());
    assert_eq!(out.status.code(), Some(1));
    let recs = ndjson(&out.stdout);
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0]["error"]["kind"], "bad_record");
    // The echo is the line's first 200 bytes, not 600 MB.
    assert_eq!(recs[0]["line"], format!("{}...", "\0".repeat(200)));
    assert_eq!(recs[1]["path"], tif.to_str().unwrap());
    assert_eq!(recs[1]["format"], "tiff");
    // The line was skipped, not held (the old reader peaked at 4.3 GB).
    assert!(peak < 48 << 20, "peak RSS {peak} bytes");
    assert!(
        out.stderr.len() < 4096,
        "{} bytes on stderr",
        out.stderr.len()
    );
}

#[test]
fn an_empty_argument_is_an_error_record_and_names_are_escaped_on_stderr() {
    use std::os::unix::ffi::OsStrExt;
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_mem-estimate"));
    let odd = std::ffi::OsStr::from_bytes(b"/no/a\x1b[31mred\xe9\x07.tif");
    let out = testkit::run_bytes(exe, &["".as_ref(), odd], b"");
    assert_eq!(out.status.code(), Some(1));
    let recs = ndjson(&out.stdout);
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0]["error"]["kind"], "bad_record");
    assert_eq!(recs[1]["error"]["kind"], "not_found");
    assert_eq!(testkit::record_path(&recs[1]).as_os_str(), odd);
    // No escape or bell byte reaches the terminal; the name's bytes are shown escaped.
    assert!(!out.stderr.iter().any(|&b| b == 0x1b || b == 0x07));
    let stderr = String::from_utf8(out.stderr).expect("stderr is UTF-8");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert_eq!(lines[0], r#"mem-estimate: "": empty argument: not a path"#);
    assert!(
        lines[1].starts_with(r"mem-estimate: /no/a\x1b[31mred\xe9\x07.tif: "),
        "{stderr}"
    );
}
