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

use crate::guard::{Reentered, Slot};

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

static SINK: Lazy<Slot<SinkFn>> = Lazy::new(Slot::default);
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

macro_rules! log_at {
    ($lvl:expr, $($arg:tt)*) => {
        if $crate::log::enabled($lvl) {
            $crate::log::write($lvl, format_args!($($arg)*));
        }
    };
}
macro_rules! error { ($($arg:tt)*) => { log_at!($crate::log::Level::Error, $($arg)*) }; }
macro_rules! warn { ($($arg:tt)*) => { log_at!($crate::log::Level::Warn, $($arg)*) }; }
macro_rules! info { ($($arg:tt)*) => { log_at!($crate::log::Level::Info, $($arg)*) }; }
macro_rules! debug { ($($arg:tt)*) => { log_at!($crate::log::Level::Debug, $($arg)*) }; }
