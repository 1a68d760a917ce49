//! The report every bench prints: a head (what is compared, the machine, the
//! setup), sections with tables of medians and ratios, the runs, the failures and
//! the runtime; printed to stdout and written to target/bench/<name>.txt. Progress
//! goes to stderr.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::time::Instant;

use super::stats::{median, spread};
use super::{order, out_dir, Contender, CONTENDERS};

/// A column of a contenders table: what it shows of a run, and its decimals.
pub type Column<R> = (fn(&R) -> f64, usize);

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

    /// `reps` repetitions of both contenders, interleaved: the order alternates, so
    /// that neither always runs first. `run` runs one contender once; `line` makes its
    /// line of the run list, which also goes to stderr with the run's time. A failed
    /// run is recorded as a failure of `what` and listed as FAILED. Returns each
    /// contender's runs and the run list in execution order.
    pub fn interleave<R>(
        &mut self,
        reps: usize,
        what: &str,
        name: fn(Contender) -> &'static str,
        mut run: impl FnMut(Contender) -> Result<R, String>,
        line: impl Fn(usize, Contender, &R) -> String,
    ) -> (BTreeMap<Contender, Vec<R>>, Vec<String>) {
        let (mut runs, mut list) = (BTreeMap::<Contender, Vec<R>>::new(), Vec::new());
        for rep in 0..reps {
            for c in order(CONTENDERS, rep) {
                let t = Instant::now();
                let l = match run(c) {
                    Ok(r) => {
                        let l = line(rep, c, &r);
                        runs.entry(c).or_default().push(r);
                        l
                    }
                    Err(e) => {
                        let first = self.fail(format_args!("{what}rep {rep} {}", name(c)), &e);
                        format!("  rep {rep} {} FAILED: {first}", name(c))
                    }
                };
                let secs = t.elapsed().as_secs_f64();
                self.progress(format!("{what}{} ({secs:.1} s)", l.trim_start()));
                list.push(l);
            }
        }
        (runs, list)
    }

    /// One row per contender in `table`: its name, the median (min..max) of each of
    /// `cols` over its runs, then the cells `more` makes of its runs; a contender
    /// without runs gets "(no successful run)". Returns each contender's medians.
    pub fn contenders<R>(
        &mut self,
        table: &Table,
        runs: &BTreeMap<Contender, Vec<R>>,
        name: fn(Contender) -> &'static str,
        cols: &[Column<R>],
        more: impl Fn(&[R]) -> Vec<String>,
    ) -> BTreeMap<Contender, Vec<f64>> {
        let mut med = BTreeMap::new();
        for c in CONTENDERS {
            let Some(rs) = runs.get(&c).filter(|rs| !rs.is_empty()) else {
                let w = table.widths[0];
                self.line(format!("  {:<w$} (no successful run)", name(c)));
                continue;
            };
            let values: Vec<Vec<f64>> = cols
                .iter()
                .map(|(f, _)| rs.iter().map(f).collect())
                .collect();
            let cells = values
                .iter()
                .zip(cols)
                .map(|(v, (_, prec))| spread(v, *prec));
            let row = [name(c).to_string()]
                .into_iter()
                .chain(cells)
                .chain(more(rs));
            self.line(table.row(row));
            med.insert(c, values.iter().map(|v| median(v)).collect());
        }
        med
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

/// Subject / baseline, column by column, of the medians [`Report::contenders`]
/// returned; None unless both have runs.
pub fn ratios(med: &BTreeMap<Contender, Vec<f64>>) -> Option<Vec<f64>> {
    let (a, b) = (
        med.get(&Contender::Subject)?,
        med.get(&Contender::Baseline)?,
    );
    Some(a.iter().zip(b).map(|(a, b)| a / b).collect())
}

/// Subject / baseline of one figure, repetition by repetition (the two runs of a
/// repetition are neighbours in time): median, min and max. None unless both
/// contenders have a run in every repetition.
pub fn paired_ratios<R>(
    runs: &BTreeMap<Contender, Vec<R>>,
    figure: fn(&R) -> f64,
) -> Option<(f64, f64, f64)> {
    paired(
        runs.get(&Contender::Subject)?,
        runs.get(&Contender::Baseline)?,
        figure,
    )
}

/// [`paired_ratios`] of the subject's runs `a` and the baseline's runs `b`.
pub fn paired<R>(a: &[R], b: &[R], figure: fn(&R) -> f64) -> Option<(f64, f64, f64)> {
    if a.len() != b.len() || a.is_empty() {
        return None;
    }
    let r: Vec<f64> = a
        .iter()
        .zip(b)
        .map(|(a, b)| figure(a) / figure(b))
        .collect();
    let (lo, hi) = super::stats::min_max(&r);
    Some((median(&r), lo, hi))
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
