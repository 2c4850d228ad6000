//! `cargo xtask docs [--check]`: man pages (clap_mangen) and shell completions
//! (clap_complete) for every tool in [`crate::tools::TOOLS`], generated in memory so that
//! `--check` can compare them with the committed files byte for byte.

use crate::tools::TOOLS;
use anyhow::{bail, Context, Result};
use clap_complete::Shell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The directories `docs` owns entirely: any file in them that the registry does not
/// produce is stale (a tool that was removed or renamed).
const OWNED_DIRS: &[&str] = &[
    "man",
    "completions/bash",
    "completions/zsh",
    "completions/fish",
];

/// The manifest's JSON Schema, checked to be valid JSON on every run.
const SCHEMA: &str = "docs/manifest.schema.json";

/// Generate, then write (or with `check`, compare).
pub fn run(root: &Path, check: bool) -> Result<()> {
    check_schema(root)?;
    let files = generate()?;
    let stale = stale_files(root, &files)?;
    if check {
        let mut problems = Vec::new();
        for (rel, content) in &files {
            match std::fs::read(root.join(rel)) {
                Ok(have) if have == *content => {}
                Ok(_) => problems.push(format!(
                    "{} is not up to date, run `cargo xtask docs`",
                    rel.display()
                )),
                Err(_) => problems.push(format!(
                    "{} is missing, run `cargo xtask docs`",
                    rel.display()
                )),
            }
        }
        for rel in &stale {
            problems.push(format!(
                "{} belongs to no tool in the registry, run `cargo xtask docs`",
                rel.display()
            ));
        }
        if !problems.is_empty() {
            for p in &problems {
                eprintln!("xtask: {p}");
            }
            bail!("{} generated file(s) out of date", problems.len());
        }
        eprintln!("xtask: {} generated files are up to date", files.len());
        return Ok(());
    }
    let mut changed = 0;
    for (rel, content) in &files {
        let path = root.join(rel);
        if std::fs::read(&path).ok().as_deref() == Some(content.as_slice()) {
            continue;
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("xtask: wrote {}", rel.display());
        changed += 1;
    }
    for rel in &stale {
        std::fs::remove_file(root.join(rel))?;
        eprintln!("xtask: removed stale {}", rel.display());
    }
    eprintln!(
        "xtask: {} files generated, {changed} changed, {} removed",
        files.len(),
        stale.len()
    );
    Ok(())
}

/// Every generated file, by path relative to the workspace root.
pub fn generate() -> Result<BTreeMap<PathBuf, Vec<u8>>> {
    let mut files = BTreeMap::new();
    for tool in TOOLS {
        let mut cmd = (tool.command)()
            .name(tool.name)
            .bin_name(tool.name)
            .disable_help_subcommand(true);
        cmd.build();
        man_pages(&cmd, &mut files)?;
        for (shell, rel) in [
            (Shell::Bash, format!("completions/bash/{}", tool.name)),
            (Shell::Zsh, format!("completions/zsh/_{}", tool.name)),
            (Shell::Fish, format!("completions/fish/{}.fish", tool.name)),
        ] {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd.clone(), tool.name, &mut buf);
            files.insert(PathBuf::from(rel), buf);
        }
    }
    Ok(files)
}

/// The man page of `cmd` and, recursively, of its visible subcommands (`tool-sub.1`).
/// No date is set, so the output depends only on the clap definitions.
fn man_pages(cmd: &clap::Command, files: &mut BTreeMap<PathBuf, Vec<u8>>) -> Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        man_pages(sub, files)?;
    }
    let man = clap_mangen::Man::new(cmd.clone()).manual("membudget");
    let mut buf = Vec::new();
    man.render(&mut buf)?;
    files.insert(Path::new("man").join(man.get_filename()), buf);
    Ok(())
}

/// Files in the owned directories that `files` does not contain.
fn stale_files(root: &Path, files: &BTreeMap<PathBuf, Vec<u8>>) -> Result<Vec<PathBuf>> {
    let mut stale = Vec::new();
    for dir in OWNED_DIRS {
        let Ok(rd) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for entry in rd {
            let entry = entry?;
            let name = entry.file_name();
            // Keeps a directory in git while it is empty; not generated, not stale.
            if name == ".gitkeep" || !entry.file_type()?.is_file() {
                continue;
            }
            let rel = Path::new(dir).join(name);
            if !files.contains_key(&rel) {
                stale.push(rel);
            }
        }
    }
    stale.sort();
    Ok(stale)
}

/// The manifest schema must be valid JSON and declare JSON Schema draft 2020-12.
fn check_schema(root: &Path) -> Result<()> {
    let path = root.join(SCHEMA);
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {SCHEMA}"))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{SCHEMA} is not valid JSON"))?;
    let draft = value.get("$schema").and_then(|s| s.as_str());
    if draft != Some("https://json-schema.org/draft/2020-12/schema") {
        bail!("{SCHEMA}: \"$schema\" must be the draft 2020-12 URI, found {draft:?}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_complete() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_eq!(a, b);
        for tool in TOOLS {
            assert!(a.contains_key(&PathBuf::from(format!("man/{}.1", tool.name))));
            assert!(a.contains_key(&PathBuf::from(format!("completions/bash/{}", tool.name))));
            let page = String::from_utf8(a[&PathBuf::from(format!("man/{}.1", tool.name))].clone())
                .unwrap();
            assert!(page.contains(".TH"), "{page}");
        }
    }

    #[test]
    fn every_tool_command_is_valid() {
        for tool in TOOLS {
            (tool.command)().debug_assert();
            assert_eq!((tool.command)().get_name(), tool.name);
        }
    }

    #[test]
    fn cli_is_valid() {
        use clap::CommandFactory;
        crate::Cli::command().debug_assert();
    }
}
