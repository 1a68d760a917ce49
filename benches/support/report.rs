//! The report every bench prints: a head (what is compared, the machine, the
//! setup), sections with tables of medians and ratios, the runs, the failures and
//! the runtime; printed to stdout and written to target/bench/<name>.txt. Progress
//! goes to stderr.

use std::fmt::Display;
use std::time::Instant;

use super::out_dir;

pub struct Report {
    name: String,
    text: String,
    failures: Vec<String>,
    started: Instant,
}

impl Report {
    /// A report named after its bench, starting with `title`, the machine line and
    /// the setup line.
    pub fn new(name: &str, title: &str, machine: &str, setup: &str) -> Report {
        eprintln!("{name}: {machine}");
        Report {
            name: name.to_string(),
            text: format!("{title}\n{machine}\nsetup: {setup}\n"),
            failures: Vec::new(),
            started: Instant::now(),
        }
    }

    pub fn line(&mut self, s: impl Display) {
        self.text += &format!("{s}\n");
    }

    pub fn lines<S: Display>(&mut self, lines: impl IntoIterator<Item = S>) {
        for l in lines {
            self.line(l);
        }
    }

    /// A new section: an empty line, then "== title ==".
    pub fn section(&mut self, title: impl Display) {
        self.line(format!("\n== {title} =="));
    }

    /// A line on stderr, prefixed with the bench's name.
    pub fn progress(&self, s: impl Display) {
        eprintln!("{}: {s}", self.name);
    }

    /// Records a failure (its first line goes into the report's failure list, the
    /// whole of it to stderr); returns the first line.
    pub fn fail(&mut self, what: impl Display, err: &str) -> String {
        eprintln!("{}: {what}: FAILED: {err}", self.name);
        let first = err.lines().next().unwrap_or("").to_string();
        self.failures.push(format!("{what}: {first}"));
        first
    }

    /// Finishes the report as target/bench/<name>.txt; see [`Report::finish_as`].
    pub fn finish(self) -> i32 {
        let name = self.name.clone();
        self.finish_as(&name)
    }

    /// Adds the failures and the runtime, prints the report, writes it to
    /// target/bench/<file>.txt and returns the exit code: 1 if anything failed.
    pub fn finish_as(mut self, file: &str) -> i32 {
        if !self.failures.is_empty() {
            self.section("failures");
            let f = std::mem::take(&mut self.failures);
            self.lines(f.iter().map(|f| format!("  {f}")));
            self.failures = f;
        }
        let secs = self.started.elapsed().as_secs_f64();
        self.line(format!("\ntotal runtime: {secs:.0} s"));
        print!("{}", self.text);
        let path = out_dir().join(format!("{file}.txt"));
        match std::fs::write(&path, &self.text) {
            Ok(()) => self.progress(format!("report written to {}", path.display())),
            Err(e) => self.progress(format!("cannot write {}: {e}", path.display())),
        }
        i32::from(!self.failures.is_empty())
    }
}

/// Fixed-width columns: the first one (or `left` ones) left-aligned, the others
/// right-aligned, each row indented by two spaces.
pub struct Table {
    widths: &'static [usize],
    left: usize,
}

impl Table {
    pub const fn new(widths: &'static [usize]) -> Table {
        Table { widths, left: 1 }
    }

    /// The first `n` columns left-aligned.
    pub const fn left(self, n: usize) -> Table {
        Table { left: n, ..self }
    }

    pub fn row<S: Display>(&self, cells: impl IntoIterator<Item = S>) -> String {
        let mut line = String::from(" ");
        for (i, (c, w)) in cells.into_iter().zip(self.widths).enumerate() {
            if i < self.left {
                line += &format!(" {c:<w$}");
            } else {
                line += &format!(" {c:>w$}");
            }
        }
        line
    }
}
