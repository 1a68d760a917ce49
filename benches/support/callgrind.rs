//! Instruction counts: a program under `valgrind --tool=callgrind`, and what
//! scripts/callgrind-cost makes of its output files. Callgrind counts exactly and
//! repeatably on a noisy machine; two runs that differ only in their number of
//! requests give the cost per request as their slope, in which start-up and
//! set-up cancel.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::machine::have;
use super::out_dir;
use crate::common;

/// Whether valgrind and callgrind_annotate are installed.
pub fn available() -> bool {
    have("valgrind") && have("callgrind_annotate")
}

/// target/bench/work/callgrind.<tag>.out, removed if it is there.
pub fn out_file(tag: &str) -> PathBuf {
    let f = out_dir().join("work").join(format!("callgrind.{tag}.out"));
    let _ = std::fs::remove_file(&f);
    f
}

/// `valgrind --tool=callgrind --callgrind-out-file=<file> <extra>`; add the program.
pub fn command(file: &Path, extra: &[String]) -> Command {
    let mut c = Command::new("valgrind");
    c.arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", file.display()))
        .args(extra);
    c
}

/// `scripts/callgrind-cost <args>`: its output lines, the '#' head left out.
pub fn cost(args: &[String]) -> Result<Vec<String>, String> {
    let script = common::repo_root().join("scripts/callgrind-cost");
    let out = Command::new(&script)
        .args(args)
        .output()
        .map_err(|e| format!("{}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "scripts/callgrind-cost {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_string)
        .collect())
}

/// Each event's total in one callgrind file.
pub fn totals(file: &Path) -> Result<BTreeMap<String, f64>, String> {
    parse_totals(cost(&["totals".into(), file.display().to_string()])?)
}

fn parse_totals(lines: Vec<String>) -> Result<BTreeMap<String, f64>, String> {
    let m: BTreeMap<String, f64> = lines
        .iter()
        .filter_map(|l| {
            let (e, v) = l.split_once(' ')?;
            Some((e.to_string(), v.trim().parse().ok()?))
        })
        .collect();
    if m.contains_key("Ir") {
        Ok(m)
    } else {
        Err(format!("no Ir total in {lines:?}"))
    }
}

/// A row of a cost report: the event columns and the function, file or part.
pub struct Row {
    pub values: Vec<f64>,
    pub name: String,
}

/// The row named `needle`, or the one whose name ends in `::needle`.
pub fn find<'a>(rows: &'a [Row], needle: &str) -> Option<&'a Row> {
    let suffix = format!("::{needle}");
    rows.iter()
        .find(|r| r.name == needle)
        .or_else(|| rows.iter().find(|r| r.name.ends_with(&suffix)))
}

/// Two callgrind runs of one program that differ only in their number of requests.
pub struct Pair {
    pub k: [u64; 2],
    pub files: [PathBuf; 2],
}

impl Pair {
    fn args(&self, opts: &[&str], report: &str) -> Vec<String> {
        let mut a = vec!["-k".to_string(), format!("{},{}", self.k[0], self.k[1])];
        a.extend(opts.iter().map(|o| o.to_string()));
        a.push(report.into());
        a.extend(self.files.iter().map(|f| f.display().to_string()));
        a
    }

    /// Each event per request.
    pub fn totals(&self) -> Result<BTreeMap<String, f64>, String> {
        parse_totals(cost(&self.args(&[], "totals"))?)
    }

    /// The events in `names`, per request, summed (0 for events not recorded).
    pub fn total(&self, names: &[&str]) -> Result<f64, String> {
        let t = self.totals()?;
        Ok(names.iter().filter_map(|n| t.get(*n)).sum())
    }

    /// The lines of a per-request cost report (`self`, `inclusive`, `files`,
    /// `components`) with script options `opts`, as the script prints them.
    pub fn lines(&self, report: &str, opts: &[&str]) -> Result<Vec<String>, String> {
        cost(&self.args(opts, report))
    }

    /// The same, parsed.
    pub fn rows(&self, report: &str, opts: &[&str]) -> Result<Vec<Row>, String> {
        rows(&self.args(opts, report))
    }
}

/// The rows of `scripts/callgrind-cost <args>`, parsed.
pub fn rows(args: &[String]) -> Result<Vec<Row>, String> {
    Ok(cost(args)?
        .iter()
        .filter_map(|l| {
            let (nums, name) = l.split_once("%  ")?;
            let mut values: Vec<f64> = nums
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            values.pop(); // the share
            Some(Row {
                values,
                name: name.to_string(),
            })
        })
        .collect())
}
