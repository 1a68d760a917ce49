//! Who drives the caller's one-thread runtime.
//!
//! Normally the caller's own thread; while an application thread waits in a
//! blocking `call()`, that thread drives the runtime itself, so a call made and
//! answered on one thread never crosses threads (two context switches per call
//! on a busy CPU). The caller's thread takes over again once no blocking call
//! has run for [`LEASE_IDLE`].

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tokio::runtime::Runtime;
use tokio::sync::watch;

use crate::callback::{self, Kind};

/// How long the caller's own thread leaves the connection to application threads
/// after their last blocking call, before it drives the connection again.
const LEASE_IDLE: Duration = Duration::from_millis(2);

#[derive(Default)]
pub(super) struct Lease {
    state: Mutex<LeaseState>,
    changed: Condvar,
    /// Asks the caller's thread to let go of the runtime.
    release: tokio::sync::Notify,
}

#[derive(Default)]
struct LeaseState {
    /// Blocking calls in progress.
    active: usize,
    last_end: Option<Instant>,
    /// The caller's thread is inside `block_on` (holds the runtime's core).
    own_thread_driving: bool,
    stopping: bool,
}

impl Lease {
    /// Starts the caller's own thread: it drives `rt` whenever no blocking call
    /// does, until `stop` turns true; then it runs `last` (the session's clean
    /// end) to completion.
    pub fn spawn_thread(
        self: &Arc<Self>,
        rt: Arc<Runtime>,
        key: usize,
        mut stop: watch::Receiver<bool>,
        last: tokio::task::JoinHandle<crate::session::Session>,
    ) -> std::io::Result<JoinHandle<()>> {
        let lease = self.clone();
        std::thread::Builder::new()
            .name("rrpc-caller".into())
            .spawn(move || {
                callback::enter(Kind::CallerDriver, key, || {
                    loop {
                        if !lease.wait_for_turn(&stop) {
                            break;
                        }
                        rt.block_on(async {
                            tokio::select! {
                                biased;
                                _ = stop.changed() => {}
                                _ = lease.release.notified() => {}
                            }
                        });
                        lease.state.lock().own_thread_driving = false;
                        if *stop.borrow() {
                            break;
                        }
                    }
                    // Let the session disconnect cleanly before the runtime goes away.
                    let _ = rt.block_on(last);
                })
            })
    }

    /// Waits while application threads drive; `false` when stopping.
    fn wait_for_turn(&self, stop: &watch::Receiver<bool>) -> bool {
        let mut ls = self.state.lock();
        while !ls.stopping
            && (ls.active > 0 || ls.last_end.is_some_and(|t| t.elapsed() < LEASE_IDLE))
        {
            let wait = if ls.active > 0 {
                Duration::from_millis(20)
            } else {
                LEASE_IDLE.saturating_sub(ls.last_end.map_or(LEASE_IDLE, |t| t.elapsed()))
            };
            self.changed
                .wait_for(&mut ls, wait.max(Duration::from_micros(100)));
        }
        if ls.stopping || *stop.borrow() {
            return false;
        }
        ls.own_thread_driving = true;
        true
    }

    /// A blocking call begins: the caller's thread lets go of the runtime.
    pub fn begin_call(&self) {
        let mut ls = self.state.lock();
        ls.active += 1;
        if ls.own_thread_driving {
            self.release.notify_one();
        }
    }

    /// A blocking call ended. No wake-up for the caller's thread: its timed wait
    /// notices the idle time by itself, and a burst of calls must not pay a
    /// switch per call.
    pub fn end_call(&self) {
        let mut ls = self.state.lock();
        ls.active -= 1;
        ls.last_end = Some(Instant::now());
    }

    /// The caller is dropped: its thread stops waiting.
    pub fn stop(&self) {
        self.state.lock().stopping = true;
        self.changed.notify_all();
    }
}
