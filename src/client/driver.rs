//! Who runs a client's runtime: the background thread (thread mode), the
//! application's thread inside `yield_for` (yield mode), or nobody; and how a
//! run starts and stops.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;
use tokio::sync::watch;

use super::core::expire_loop;
use super::{Client, ClientError};
use crate::callback::{self, Kind};
use crate::session::Session;

/// Who runs the runtime at the moment.
pub(super) enum Mode {
    /// Nobody; `runtime` is at rest (holding a session task if one was started
    /// by yield mode).
    Idle,
    /// The background thread, which hands the runtime back when it ends.
    Thread(JoinHandle<Runtime>),
}

pub(super) struct Driver {
    pub(super) runtime: Option<Runtime>,
    pub(super) mode: Mode,
    /// Tells the session task to disconnect and end.
    pub(super) stop_tx: Option<watch::Sender<bool>>,
    /// Set while a session task is alive on the runtime; it gives the session back.
    pub(super) task: Option<tokio::task::JoinHandle<Session>>,
    /// The session while no task runs it.
    pub(super) session: Option<Session>,
}

impl Client {
    /// Refuses what would wait for the calling thread itself: from inside any
    /// client's handler, or from a thread that runs an async runtime (a caller's
    /// response callback, a tokio task).
    fn refuse_reentry(&self, what: &'static str) -> Result<(), ClientError> {
        // A thread driving a caller (its own, or one in a blocking call).
        #[cfg(feature = "caller")]
        let in_caller = callback::inside_kind(Kind::CallerDriver);
        #[cfg(not(feature = "caller"))]
        let in_caller = false;
        if callback::inside_kind(Kind::ClientHandler)
            || in_caller
            || tokio::runtime::Handle::try_current().is_ok()
        {
            warn!("{what}: it would wait for the thread running the callback; refused");
            return Err(ClientError::WrongState(what));
        }
        Ok(())
    }

    /// Thread mode: starts the background thread that connects, subscribes every
    /// device, keeps the connection alive and calls the handler. With a connect
    /// timeout, returns once connected and the broker acknowledged the device
    /// subscriptions, so requests published after it returns are delivered. See
    /// [`ClientConfig::mqtt`](super::ClientConfig::mqtt) for what happens when the broker is unreachable.
    pub fn start(&self) -> Result<(), ClientError> {
        self.refuse_reentry("start cannot be called from a request or response callback")?;
        let link = self.core.link.clone();
        // This thread reports the first connection's failure; the log does not.
        let _watch = link.watch();
        let mut d = self.driver.lock();
        if matches!(d.mode, Mode::Thread(_)) {
            return Err(ClientError::WrongState("client is already started"));
        }
        let errors_before = link.errors();
        self.ensure_task(&mut d);
        let runtime = d.runtime.take().expect("runtime at rest when idle");
        let mut stop_rx = d.stop_tx.as_ref().expect("stop channel").subscribe();
        let handle = std::thread::Builder::new()
            .name("rrpc-client".into())
            .spawn(move || {
                runtime.block_on(async {
                    // Run until told to stop; the session task does the work.
                    while !*stop_rx.borrow() {
                        if stop_rx.changed().await.is_err() {
                            break;
                        }
                    }
                });
                runtime
            })
            .map_err(|e| ClientError::InvalidArgument(format!("cannot start thread: {e}")))?;
        d.mode = Mode::Thread(handle);
        drop(d);

        let wait = self.core.cfg.mqtt.connect_timeout_ms;
        if wait == 0 {
            return Ok(());
        }
        let deadline = Instant::now() + Duration::from_millis(u64::from(wait));
        let outcome = link.wait(deadline, || {
            if link.is_subscribed() {
                Some(None)
            } else if link.errors() != errors_before {
                Some(link.last_error())
            } else {
                None
            }
        });
        let err = match outcome {
            Some(None) => return Ok(()),
            Some(Some(e)) => ClientError::from(e),
            _ => ClientError::ConnectFailed(format!(
                "could not connect to {}: no CONNACK and SUBACK within {wait} ms",
                link.address()
            )),
        };
        let _ = self.stop();
        Err(err)
    }

    /// Disconnects and ends the background thread (thread mode), or disconnects
    /// a connection made by `yield_for` (yield mode). Replies already accepted
    /// are sent before the MQTT DISCONNECT. Returns when no handler is running
    /// any more. Pending requests stay in the table until they expire.
    pub fn stop(&self) -> Result<(), ClientError> {
        self.refuse_reentry("stop cannot be called from a request or response callback")?;
        let mut d = self.driver.lock();
        let Some(stop_tx) = d.stop_tx.take() else {
            return Ok(()); // nothing running
        };
        let _ = stop_tx.send(true);
        if let Mode::Thread(handle) = std::mem::replace(&mut d.mode, Mode::Idle) {
            match handle.join() {
                Ok(rt) => d.runtime = Some(rt),
                Err(_) => {
                    error!("client thread panicked; creating a fresh runtime");
                    d.runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .ok();
                }
            }
        }
        if let (Some(task), Some(rt)) = (d.task.take(), d.runtime.as_ref()) {
            match rt
                .block_on(async { tokio::time::timeout(Duration::from_millis(2000), task).await })
            {
                Ok(Ok(session)) => d.session = Some(session),
                _ => {
                    // The session is lost (dropped with its task): make a new one
                    // on the next start.
                    *self.core.publisher.write() = None;
                    self.core.link.forget();
                }
            }
        }
        Ok(())
    }

    /// Yield mode: does network work and calls the handler on the calling thread
    /// for `timeout_ms` milliseconds (0: only what is ready now). The first call
    /// connects. Returns `ConnectFailed` when connection attempts failed during
    /// this call and the client is still not connected; the next call retries
    /// (after the reconnect delay).
    pub fn yield_for(&self, timeout_ms: u32) -> Result<(), ClientError> {
        self.refuse_reentry("yield cannot be called from a request or response callback")?;
        let mut d = self.driver.try_lock().ok_or(ClientError::WrongState(
            "another thread is inside yield, start or stop on this client",
        ))?;
        if matches!(d.mode, Mode::Thread(_)) {
            return Err(ClientError::WrongState(
                "client is started in thread mode; yield is not used",
            ));
        }
        let link = self.core.link.clone();
        // Failures during this call are returned by it.
        let _watch = link.watch();
        let errors_before = link.errors();
        self.ensure_task(&mut d);
        let rt = d.runtime.as_ref().expect("runtime at rest when idle");
        rt.block_on(async {
            if timeout_ms == 0 {
                // Let the session handle whatever the network has ready now.
                for _ in 0..4 {
                    tokio::task::yield_now().await;
                }
            } else {
                tokio::time::sleep(Duration::from_millis(u64::from(timeout_ms))).await;
            }
        });
        if !link.is_connected() && link.errors() != errors_before {
            return Err(match link.last_error() {
                Some(e) => ClientError::from(e),
                None => ClientError::ConnectFailed(String::new()),
            });
        }
        Ok(())
    }

    /// Spawns the session task (and the expiry task) on the runtime if none is alive.
    fn ensure_task(&self, d: &mut Driver) {
        if d.task.is_some() {
            return;
        }
        let session = match d.session.take() {
            Some(s) => s,
            None => {
                let s = self.core.open_session();
                *self.core.publisher.write() = Some(s.publisher());
                s
            }
        };
        let (stop_tx, stop_rx) = watch::channel(false);
        let rt = d.runtime.as_ref().expect("runtime at rest when idle");
        d.task = Some(session.spawn(rt.handle(), self.core.clone(), stop_rx.clone()));
        rt.spawn(expire_loop(self.core.clone(), stop_rx));
        d.stop_tx = Some(stop_tx);
    }
}
