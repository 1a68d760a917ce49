//! Library logging: one process-wide sink.
//!
//! By default messages at `Warn` and above go to stderr, prefixed with `librrpc`;
//! the environment variable `RRPC_LOG` (`off`, `error`, `warn`, `info`, `debug`)
//! changes the threshold. An application installs its own sink with
//! [`set_sink`] (C: `rrpc_set_log_handler`), which then receives every message
//! at or above its chosen level, on whatever thread produced it.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};

use once_cell::sync::Lazy;

use crate::callback::{CallbackSlot, Reentered};

/// Message severity. Numeric values are part of the C ABI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u32)]
pub enum Level {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
}

impl Level {
    pub fn from_u32(v: u32) -> Option<Level> {
        match v {
            1 => Some(Level::Error),
            2 => Some(Level::Warn),
            3 => Some(Level::Info),
            4 => Some(Level::Debug),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }
}

/// What a log sink does: receives the level and the formatted message.
pub type SinkFn = dyn Fn(Level, &str) + Send + Sync;
/// A log sink.
pub type Sink = Box<SinkFn>;

static SINK: Lazy<CallbackSlot<SinkFn>> = Lazy::new(CallbackSlot::default);
/// Highest level that is produced at all (0 = off). Checked before formatting.
static MAX_LEVEL: Lazy<AtomicU8> = Lazy::new(|| AtomicU8::new(env_level()));

fn env_level() -> u8 {
    match std::env::var("RRPC_LOG").as_deref() {
        Ok("off") | Ok("none") | Ok("0") => 0,
        Ok("error") => 1,
        Ok("info") => 3,
        Ok("debug") => 4,
        _ => 2,
    }
}

/// Installs `sink` for messages at `max` and above, or restores the stderr
/// default when `sink` is `None` (with `max` as its threshold; `None` = off).
/// When it returns, the sink it replaced is not running on any other thread and
/// will not run again; from inside that sink it fails and changes nothing.
pub fn set_sink(sink: Option<Sink>, max: Option<Level>) -> Result<(), Reentered> {
    SINK.set(sink)?;
    MAX_LEVEL.store(max.map_or(0, |l| l as u8), Ordering::Relaxed);
    Ok(())
}

pub fn enabled(level: Level) -> bool {
    (level as u8) <= MAX_LEVEL.load(Ordering::Relaxed)
}

pub fn write(level: Level, args: fmt::Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    let msg = args.to_string();
    if SINK.call(|s| s(level, &msg)).is_none() {
        eprintln!("librrpc {}: {}", level.name(), msg);
    }
}

// The logging macros: a build without the MQTT families (the router alone, the
// JT/T 808 codec) logs nothing, and not every build logs at every level.
#[allow(unused_macros)]
macro_rules! log_at {
    ($lvl:expr, $($arg:tt)*) => {
        if $crate::log::enabled($lvl) {
            $crate::log::write($lvl, format_args!($($arg)*));
        }
    };
}
#[allow(unused_macros)]
macro_rules! error { ($($arg:tt)*) => { log_at!($crate::log::Level::Error, $($arg)*) }; }
#[allow(unused_macros)]
macro_rules! warn { ($($arg:tt)*) => { log_at!($crate::log::Level::Warn, $($arg)*) }; }
#[allow(unused_macros)]
macro_rules! info { ($($arg:tt)*) => { log_at!($crate::log::Level::Info, $($arg)*) }; }
#[allow(unused_macros)]
macro_rules! debug { ($($arg:tt)*) => { log_at!($crate::log::Level::Debug, $($arg)*) }; }

/// Longest excerpt of network input a log line carries, in characters.
pub(crate) const EXCERPT_CHARS: usize = 80;

/// Network input (a topic, a client id) as a log line may carry it: at most
/// 80 characters (`EXCERPT_CHARS`), control and quote characters escaped, and the
/// length of what was cut. A topic may be 64 KiB of anything.
pub struct Excerpt<'a>(pub &'a str);

impl fmt::Display for Excerpt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for (n, c) in self.0.chars().enumerate() {
            if n == EXCERPT_CHARS {
                return write!(f, "\"... ({} bytes in all)", self.0.len());
            }
            if c.is_control() || c == '"' || c == '\\' {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        f.write_str("\"")
    }
}

/// Bytes that should have been text (a topic that is not UTF-8): an escaped
/// excerpt as [`Excerpt`] shows text.
pub struct BytesExcerpt<'a>(pub &'a [u8]);

impl fmt::Display for BytesExcerpt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cut = self.0.len().min(EXCERPT_CHARS);
        write!(f, "b\"{}\"", self.0[..cut].escape_ascii())?;
        if cut < self.0.len() {
            write!(f, "... ({} bytes in all)", self.0.len())?;
        }
        Ok(())
    }
}

/// Lines of one kind let through per [`THROTTLE_WINDOW_MS`].
pub(crate) const THROTTLE_LINES: u32 = 5;
/// The window of a [`Throttle`], in ms.
pub(crate) const THROTTLE_WINDOW_MS: u64 = 10_000;

/// Rate limit of one kind of log line that the network can provoke at will
/// (a malformed topic, an oversize message): 5 lines (`THROTTLE_LINES`) per
/// 10 s (`THROTTLE_WINDOW_MS`), then silence; the next line let through says how
/// many were suppressed.
pub struct Throttle {
    /// Window start (ms), lines in the window, lines suppressed since the last one shown.
    state: parking_lot::Mutex<(u64, u32, u64)>,
}

impl Throttle {
    pub const fn new() -> Throttle {
        Throttle {
            state: parking_lot::const_mutex((0, 0, 0)),
        }
    }

    /// Whether a line may go out at `now_ms`: `Some(suppressed before it)`, or
    /// `None` (counted as suppressed).
    pub fn admit(&self, now_ms: u64) -> Option<u64> {
        let mut s = self.state.lock();
        if now_ms.saturating_sub(s.0) >= THROTTLE_WINDOW_MS || s.0 == 0 {
            s.0 = now_ms.max(1);
            s.1 = 0;
        }
        if s.1 < THROTTLE_LINES {
            s.1 += 1;
            Some(std::mem::take(&mut s.2))
        } else {
            s.2 += 1;
            None
        }
    }
}

impl Default for Throttle {
    fn default() -> Throttle {
        Throttle::new()
    }
}

/// Writes one throttled line (see [`Throttle`]).
pub fn write_throttled(throttle: &Throttle, level: Level, args: fmt::Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    match throttle.admit(crate::clock::now_ms()) {
        Some(0) => write(level, args),
        Some(n) => write(
            level,
            format_args!("{args} ({n} similar line(s) suppressed before this one)"),
        ),
        None => {}
    }
}

/// `warn!` (or another level) through a `static` [`Throttle`] of its own.
#[allow(unused_macros)]
macro_rules! throttled {
    ($lvl:expr, $($arg:tt)*) => {{
        static THROTTLE: $crate::log::Throttle = $crate::log::Throttle::new();
        $crate::log::write_throttled(&THROTTLE, $lvl, format_args!($($arg)*));
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_bounded_and_escaped() {
        let long = "a/".repeat(40_000);
        let s = Excerpt(&long).to_string();
        assert!(s.len() < 140, "{s}");
        assert!(s.ends_with("(80000 bytes in all)"), "{s}");
        let s = Excerpt("x\ny\u{1b}[31m\"z").to_string();
        assert_eq!(s, r#""x\ny\u{1b}[31m\"z""#);
        assert_eq!(Excerpt("short").to_string(), "\"short\"");
        let s = BytesExcerpt(b"/a\xff\n").to_string();
        assert_eq!(s, r#"b"/a\xff\n""#);
        let s = BytesExcerpt(&[0xfe; 1000]).to_string();
        assert!(s.len() < 400 && s.ends_with("(1000 bytes in all)"), "{s}");
    }

    #[test]
    fn a_throttle_lets_a_few_through_per_window_and_counts_the_rest() {
        let t = Throttle::new();
        let t0 = 5_000;
        for _ in 0..THROTTLE_LINES {
            assert_eq!(t.admit(t0), Some(0));
        }
        for _ in 0..100 {
            assert_eq!(t.admit(t0 + 1), None);
        }
        assert_eq!(t.admit(t0 + THROTTLE_WINDOW_MS - 1), None);
        assert_eq!(t.admit(t0 + THROTTLE_WINDOW_MS), Some(101));
        assert_eq!(t.admit(t0 + THROTTLE_WINDOW_MS), Some(0));
    }
}
