//! Statistics over repetitions: medians with their spread, percentiles of round-trip
//! times, ratios against the baseline and target verdicts.

/// The `p`th percentile (nearest rank) of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

pub fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}

/// "median (min..max)" with `prec` decimals; "-" for no values.
pub fn spread(v: &[f64], prec: usize) -> String {
    if v.is_empty() {
        return "-".into();
    }
    let (lo, hi) = min_max(v);
    format!("{:.prec$} ({lo:.prec$}..{hi:.prec$})", median(v))
}

/// The same for counts.
pub fn spread_u64(v: &[u64]) -> String {
    spread(&v.iter().map(|&x| x as f64).collect::<Vec<_>>(), 0)
}

pub fn verdict(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "MISSED"
    }
}

/// p50, p99 and max of round-trip times (µs), and how many exceeded a stall limit.
#[derive(Clone, Copy, Debug, Default)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub over: usize,
}

impl Latency {
    /// Of `rtts` in µs; `over`: the calls slower than `stall_us`.
    pub fn of(mut rtts: Vec<f64>, stall_us: f64) -> Latency {
        rtts.sort_by(f64::total_cmp);
        Latency {
            p50: percentile(&rtts, 50.0),
            p99: percentile(&rtts, 99.0),
            max: *rtts.last().expect("round-trip times"),
            over: rtts.iter().filter(|&&x| x > stall_us).count(),
        }
    }
}

/// Prints where the slowest `n` calls of a sequential phase fell ("#index:µs") to
/// stderr, for a closer look at stalls.
pub fn print_slowest(who: &str, rtts: &[f64], n: usize) {
    let mut idx: Vec<(usize, f64)> = rtts.iter().copied().enumerate().collect();
    idx.sort_by(|a, b| b.1.total_cmp(&a.1));
    let top: Vec<String> = idx
        .iter()
        .take(n)
        .map(|(i, v)| format!("#{i}:{v:.0}"))
        .collect();
    eprintln!("  {who} slowest sequential calls: {}", top.join(" "));
}
