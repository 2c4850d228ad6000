//! Ctrl-C, SIGTERM and SIGHUP during a run: the temporary output is removed, nothing
//! appears under the final name, and the process ends by the signal it got (so a shell
//! sees 130 or 143, and `make` knows it was interrupted).

use std::io::{BufRead, BufReader};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn interrupted_by(signal: libc::c_int) {
    let dir = testkit::tempdir();
    let dest = dir.path().join("out dir/final é.bin");
    let mut cmd = Command::new(testkit::example("membudget", "hold_output"));
    // A test runner started in the background may pass the signal down ignored, and the
    // tool rightly keeps an ignored signal ignored: give the child the default action.
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::signal(signal, libc::SIG_DFL);
            Ok(())
        });
    }
    let mut child = cmd
        .arg(&dest)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hold_output");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read the temp path");
    let tmp = PathBuf::from(line.trim_end());
    assert!(tmp.is_file(), "temporary output {} missing", tmp.display());
    assert_eq!(
        tmp.parent(),
        dest.parent(),
        "temp file beside the destination"
    );
    // SAFETY: sending a signal to our own child.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
    let status = child.wait().expect("wait");
    assert_eq!(status.signal(), Some(signal), "{status:?}");
    assert!(!tmp.exists(), "{} left behind", tmp.display());
    assert!(!dest.exists(), "{} appeared", dest.display());
    let names: Vec<_> = std::fs::read_dir(dest.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(names.is_empty(), "left in the output directory: {names:?}");
}

#[test]
fn ctrl_c_removes_the_temporary_output() {
    interrupted_by(libc::SIGINT);
}

#[test]
fn sigterm_removes_the_temporary_output() {
    interrupted_by(libc::SIGTERM);
}

#[test]
fn sighup_removes_the_temporary_output() {
    interrupted_by(libc::SIGHUP);
}

#[test]
fn an_ignored_signal_stays_ignored() {
    // `nohup tool ...` must survive the hangup: the tool does not take over SIGHUP.
    let dir = testkit::tempdir();
    let dest = dir.path().join("kept.bin");
    let mut cmd = Command::new(testkit::example("membudget", "hold_output"));
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            Ok(())
        });
    }
    let mut child = cmd
        .arg(&dest)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read the temp path");
    let pid = child.id() as libc::pid_t;
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    // The hangup is ignored; SIGTERM still ends it, cleanly.
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "SIGHUP ended it"
    );
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let status = child.wait().expect("wait");
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    assert!(!PathBuf::from(line.trim_end()).exists());
}
