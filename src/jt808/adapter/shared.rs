//! [`SharedAdapter`]: an [`Adapter`] that any number of threads drive at once,
//! with the send function that writes its frames to terminals and the event
//! callback that hears what became of each request. The C API's
//! `rrpc_jt808_adapter` is one.
//!
//! It owns one lock around the adapter, held only for table updates. The send
//! function and the event callback run on the thread of the call that caused
//! them, in order, with no lock held, so they may call the adapter again
//! (submit, feed bytes, cancel, tick, replace the other callback). Replacing or
//! removing a callback waits for a call of it in progress on another thread,
//! and is refused from inside that very callback; after it returns, the old
//! callback never runs again. [`SharedAdapter::close`] releases both, and is
//! refused from inside either. A callback that panics is caught: a send
//! function that panics has failed to send, an event callback that panics
//! misses that one event. Like the adapter it reads no clock: every call that
//! needs the time takes `now_ms`.
//!
//! ```
//! use std::sync::Arc;
//! use rrpc::jt808::{AdapterConfig, Call, Event, Phone, SharedAdapter, Version};
//!
//! let adapter: Arc<SharedAdapter<std::io::Error>> =
//!     Arc::new(SharedAdapter::new(AdapterConfig::default()).unwrap());
//! adapter
//!     .set_send(Some(Box::new(|conn: u64, _phone: &Phone, frames: &[u8]| {
//!         // Write `frames` to the socket of connection `conn`.
//!         let _ = (conn, frames);
//!         Ok(())
//!     })))
//!     .unwrap();
//! adapter
//!     .set_event_callback(Some(Box::new(|event: &Event, _conn: Option<u64>| {
//!         if let Event::Reply { token, payload, .. } = event {
//!             // Answer RRPC request `token` with `payload`.
//!             let _ = (token, payload);
//!         }
//!     })))
//!     .unwrap();
//! let phone = Phone::from_digits("13800138000", Version::V2013).unwrap();
//! // The terminal authenticated on connection 3 with the code it was issued.
//! adapter.terminal_authenticated(&phone, 3).unwrap();
//! adapter.submit(&Call::new(7, phone, 0x41, b"hi", 9_000), 1_000).unwrap();
//! assert_eq!(adapter.stats().sent, 1);
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use parking_lot::Mutex;

use crate::callback::{self, CallbackSlot, Kind, Reentered};

use super::super::codec::{Frame, Phone};
use super::{
    Adapter, AdapterConfig, AdapterStats, Call, ConfigError, ConnectionError, Event, Handled,
    SubmitError, Submitted,
};

/// The send function of a [`SharedAdapter`], called as `(conn, phone, frames)`:
/// writes `frames` (one whole 0x8900 message, its packets back to back) to
/// terminal `phone` on connection `conn`, or says why it could not. Written or
/// queued for the socket is a success.
pub type SendFn<E> = dyn Fn(u64, &Phone, &[u8]) -> Result<(), E> + Send + Sync;

/// The event callback of a [`SharedAdapter`]: an event, and the connection it
/// concerns: the one the bytes came on for [`Event::Frame`] and
/// [`Event::Malformed`], else the terminal's (`None` when it has none, such as
/// after it was disconnected). It never sees [`Event::SendQueued`]: the shared
/// adapter writes those frames through its send function itself.
pub type EventFn = dyn Fn(&Event, Option<u64>) + Send + Sync;

/// Why [`SharedAdapter::submit`] failed. Nothing is held then.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SharedSubmitError<E> {
    /// The adapter refused the request.
    #[error(transparent)]
    Refused(#[from] SubmitError),
    /// No send function is registered ([`SharedAdapter::set_send`]).
    #[error("no send function is registered")]
    NoSendFunction,
    /// The send function failed; the request was released.
    #[error("the send function failed ({0}); the request was released")]
    SendFailed(E),
    /// The send function panicked (caught); the request was released.
    #[error("the send function panicked; the request was released")]
    SendPanicked,
}

/// An [`Adapter`] shared between threads, with its send function and event
/// callback: see the module documentation. `E` is what the send function
/// fails with.
pub struct SharedAdapter<E> {
    adapter: Mutex<Adapter>,
    send: CallbackSlot<SendFn<E>>,
    event: CallbackSlot<EventFn>,
}

impl<E> fmt::Debug for SharedAdapter<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedAdapter")
            .field("adapter", &*self.adapter.lock())
            .field("send", &self.send.is_set())
            .field("event_callback", &self.event.is_set())
            .finish()
    }
}

/// What became of one attempt to write frames.
type SendResult<E> = Result<(), SharedSubmitError<E>>;

impl<E> SharedAdapter<E> {
    /// An adapter with these limits, with no send function and no event
    /// callback yet.
    ///
    /// # Errors
    /// As [`Adapter::new`].
    pub fn new(config: AdapterConfig) -> Result<SharedAdapter<E>, ConfigError> {
        Ok(SharedAdapter {
            adapter: Mutex::new(Adapter::new(config)?),
            send: CallbackSlot::default(),
            event: CallbackSlot::default(),
        })
    }

    /// The key of "inside this adapter's callbacks" on a thread.
    fn key(&self) -> usize {
        self as *const Self as usize
    }

    /// Sets (or with `None` removes) the send function. Without one, submits
    /// fail ([`SharedSubmitError::NoSendFunction`]) and queued requests that
    /// come due are answered with `send failed`. When it returns, the function
    /// it replaced is not running on any other thread and will not run again;
    /// from inside that function it is refused and changes nothing.
    pub fn set_send(&self, f: Option<Box<SendFn<E>>>) -> Result<(), Reentered> {
        self.send.set(f)
    }

    /// Sets (or with `None` removes) the event callback; without one, events
    /// are dropped. Released as [`SharedAdapter::set_send`] releases the send
    /// function.
    pub fn set_event_callback(&self, f: Option<Box<EventFn>>) -> Result<(), Reentered> {
        self.event.set(f)
    }

    /// Whether this thread is inside the send function or the event callback
    /// of this adapter, at any depth.
    pub fn in_any_callback(&self) -> bool {
        callback::inside(Kind::Object, self.key())
    }

    /// Releases the send function and the event callback, waiting for calls
    /// in progress on other threads; neither runs after it returns. Refused
    /// from inside either (it would wait for itself), changing nothing.
    pub fn close(&self) -> Result<(), Reentered> {
        callback::release_outside(self.key(), || {
            self.send.set(None)?;
            self.event.set(None)
        })
    }

    /// Runs `f` with the adapter locked: for reading its tables. `f` must not
    /// call back into this shared adapter.
    pub fn with_adapter<T>(&self, f: impl FnOnce(&Adapter) -> T) -> T {
        f(&self.adapter.lock())
    }

    /// Sends request `call` through the send function before it returns (on
    /// this thread, with no lock held), or queues it behind the outstanding
    /// Answer request of its (terminal, type): it then goes out through the
    /// send function when that one completes. A terminal that is not bound to
    /// a connection is refused ([`SubmitError::NotConnected`]) before the
    /// request is looked at, and not counted in `refused`.
    ///
    /// # Errors
    /// [`SharedSubmitError`]; nothing is held then. A request whose frames the
    /// send function could not write is released as by
    /// [`SharedAdapter::cancel`].
    pub fn submit(&self, call: &Call<'_>, now_ms: u64) -> Result<Submitted, SharedSubmitError<E>> {
        if !self.send.is_set() {
            return Err(SharedSubmitError::NoSendFunction);
        }
        let mut frames = Vec::new();
        let (submitted, conn) = {
            let mut a = self.adapter.lock();
            let conn = a
                .terminal_conn(&call.phone)
                .ok_or(SubmitError::NotConnected { phone: call.phone })?;
            (a.submit(call, now_ms, &mut frames)?, conn)
        };
        if let Submitted::Sent { .. } = submitted {
            if let Err(e) = self.write(conn, &call.phone, &frames) {
                self.run(now_ms, |a, events| a.cancel(call.token, now_ms, events));
                return Err(e);
            }
        }
        Ok(submitted)
    }

    /// Takes bytes received on connection `conn` (any chunking), as
    /// [`Adapter::on_bytes`]; the events go to the event callback and queued
    /// requests that come due go out through the send function, before it
    /// returns.
    ///
    /// # Errors
    /// As [`Adapter::on_bytes`].
    pub fn on_bytes(&self, conn: u64, bytes: &[u8], now_ms: u64) -> Result<(), ConnectionError> {
        self.run(now_ms, |a, events| a.on_bytes(conn, bytes, now_ms, events))
    }

    /// Takes one frame the application decoded itself, as
    /// [`Adapter::on_frame`]; events and queued requests as
    /// [`SharedAdapter::on_bytes`].
    pub fn on_frame(&self, conn: u64, frame: &Frame, now_ms: u64) -> Handled {
        self.run(now_ms, |a, events| a.on_frame(conn, frame, now_ms, events))
    }

    /// Binds terminal `phone` to connection `conn`, as
    /// [`Adapter::terminal_authenticated`].
    ///
    /// # Errors
    /// As [`Adapter::terminal_authenticated`].
    pub fn terminal_authenticated(&self, phone: &Phone, conn: u64) -> Result<(), ConnectionError> {
        self.adapter.lock().terminal_authenticated(phone, conn)
    }

    /// The terminal went away, as [`Adapter::terminal_disconnected`]: its
    /// requests are answered through the event callback before it returns.
    /// Returns how many.
    pub fn terminal_disconnected(&self, phone: &Phone, now_ms: u64) -> usize {
        self.run(now_ms, |a, events| {
            a.terminal_disconnected(phone, now_ms, events)
        })
    }

    /// Connection `conn` closed, as [`Adapter::connection_closed`]. Returns
    /// how many requests were answered.
    pub fn connection_closed(&self, conn: u64, now_ms: u64) -> usize {
        self.run(now_ms, |a, events| {
            a.connection_closed(conn, now_ms, events)
        })
    }

    /// Releases request `token` without any event, as [`Adapter::cancel`]; a
    /// request queued behind it may go out. Returns whether it was held.
    pub fn cancel(&self, token: u64, now_ms: u64) -> bool {
        self.run(now_ms, |a, events| a.cancel(token, now_ms, events))
    }

    /// Expires the requests whose deadline is at or before `now_ms`, as
    /// [`Adapter::expire`]. Returns how many, and the earliest deadline still
    /// held once the events were delivered.
    pub fn tick(&self, now_ms: u64) -> (usize, Option<u64>) {
        let n = self.run(now_ms, |a, events| a.expire(now_ms, events));
        (n, self.next_deadline())
    }

    /// The earliest deadline among held requests.
    pub fn next_deadline(&self) -> Option<u64> {
        self.adapter.lock().next_deadline()
    }

    /// Sets where a terminal's serial counter continues, as
    /// [`Adapter::set_next_serial`].
    ///
    /// # Errors
    /// As [`Adapter::set_next_serial`].
    pub fn set_next_serial(&self, phone: &Phone, serial: u16) -> Result<(), ConnectionError> {
        self.adapter.lock().set_next_serial(phone, serial)
    }

    /// The counters and gauges now.
    pub fn stats(&self) -> AdapterStats {
        self.adapter.lock().stats()
    }

    /// Runs `f` on the adapter under its lock, then hands the events it made
    /// over with no lock held.
    fn run<T>(&self, now_ms: u64, f: impl FnOnce(&mut Adapter, &mut Vec<Event>) -> T) -> T {
        let (r, events) = {
            let mut a = self.adapter.lock();
            let mut events = Vec::new();
            let r = f(&mut a, &mut events);
            (r, with_connections(&a, events))
        };
        self.deliver(events, now_ms);
        r
    }

    /// Queued requests that came due go out through the send function (one
    /// that cannot be written is answered with `send failed`); every other
    /// event goes to the event callback, in order.
    fn deliver(&self, events: Vec<(Event, Option<u64>)>, now_ms: u64) {
        let mut work: VecDeque<(Event, Option<u64>)> = events.into();
        while let Some((event, conn)) = work.pop_front() {
            match event {
                Event::SendQueued {
                    token,
                    phone,
                    frames,
                    ..
                } => {
                    let written = conn.is_some_and(|c| self.write(c, &phone, &frames).is_ok());
                    if !written {
                        let mut more = Vec::new();
                        let mut a = self.adapter.lock();
                        a.send_failed(token, now_ms, &mut more);
                        work.extend(with_connections(&a, more));
                    }
                }
                other => self.emit(&other, conn),
            }
        }
    }

    /// Writes a message's frames through the send function.
    fn write(&self, conn: u64, phone: &Phone, frames: &[u8]) -> SendResult<E> {
        let sent = callback::enter(Kind::Object, self.key(), || {
            self.send
                .call(|f| catch_unwind(AssertUnwindSafe(|| f(conn, phone, frames))))
        });
        match sent {
            None => Err(SharedSubmitError::NoSendFunction),
            Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(SharedSubmitError::SendFailed(e)),
            Some(Err(_panic)) => Err(SharedSubmitError::SendPanicked),
        }
    }

    /// Hands one event to the event callback; a panic in it is caught.
    fn emit(&self, event: &Event, conn: Option<u64>) {
        callback::enter(Kind::Object, self.key(), || {
            self.event.call(|f| {
                // A panicking callback misses this event; the others still come.
                let _ = catch_unwind(AssertUnwindSafe(|| f(event, conn)));
            })
        });
    }
}

/// Events with the connection each one concerns, read under the lock.
fn with_connections(a: &Adapter, events: Vec<Event>) -> Vec<(Event, Option<u64>)> {
    events
        .into_iter()
        .map(|e| {
            let conn = match &e {
                Event::Frame { conn, .. } | Event::Malformed { conn, .. } => Some(*conn),
                Event::Reply { phone, .. }
                | Event::Expired { phone, .. }
                | Event::SendQueued { phone, .. }
                | Event::Uplink { phone, .. } => a.terminal_conn(phone),
            };
            (e, conn)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Weak};
    use std::time::Duration;

    use crate::jt808::{
        adapter::error_payload, decode_frame, Completion, ErrorReason, Header, ReplyKind, Version,
        MSG_DOWNLINK_PASSTHROUGH, MSG_TERMINAL_RESPONSE, MSG_UPLINK_PASSTHROUGH,
    };

    type Shared = SharedAdapter<&'static str>;
    type Events = Arc<parking_lot::Mutex<Vec<(Event, Option<u64>)>>>;
    type Sent = Arc<parking_lot::Mutex<Vec<(u64, Vec<u8>)>>>;

    const CONN: u64 = 3;

    fn phone() -> Phone {
        Phone::from_digits("13800138000", Version::V2013).unwrap()
    }

    /// An adapter whose terminal is bound to `CONN`.
    fn bound() -> Arc<Shared> {
        let a = Arc::new(Shared::new(AdapterConfig::default()).unwrap());
        a.terminal_authenticated(&phone(), CONN).unwrap();
        a
    }

    /// A send function and an event callback that record what they get.
    fn recording(a: &Shared) -> (Sent, Events) {
        let (sent, events): (Sent, Events) = Default::default();
        let s2 = sent.clone();
        a.set_send(Some(Box::new(
            move |conn: u64, _: &Phone, frames: &[u8]| {
                s2.lock().push((conn, frames.to_vec()));
                Ok(())
            },
        )))
        .unwrap();
        let e2 = events.clone();
        a.set_event_callback(Some(Box::new(move |e: &Event, conn: Option<u64>| {
            e2.lock().push((e.clone(), conn))
        })))
        .unwrap();
        (sent, events)
    }

    fn uplink(content: &[u8]) -> Frame {
        let mut body = vec![0x41];
        body.extend_from_slice(content);
        Frame {
            header: Header::new(MSG_UPLINK_PASSTHROUGH, phone(), 9),
            body,
        }
    }

    fn ack(serial: u16) -> Frame {
        let mut body = serial.to_be_bytes().to_vec();
        body.extend_from_slice(&MSG_DOWNLINK_PASSTHROUGH.to_be_bytes());
        body.push(0);
        Frame {
            header: Header::new(MSG_TERMINAL_RESPONSE, phone(), 10),
            body,
        }
    }

    fn call(token: u64) -> Call<'static> {
        Call::new(token, phone(), 0x41, b"hi", 1_000)
    }

    /// Waits until `n` reaches `at_least`.
    fn wait_for(n: &AtomicUsize, at_least: usize) {
        while n.load(Ordering::SeqCst) < at_least {
            std::thread::yield_now();
        }
    }

    #[test]
    fn requests_go_out_through_the_send_function_and_events_name_their_connection() {
        let a = bound();
        let (sent, events) = recording(&a);
        assert_eq!(
            a.submit(&call(7), 0),
            Ok(Submitted::Sent {
                serial: 0,
                packets: 1
            })
        );
        let (conn, frames) = sent.lock()[0].clone();
        assert_eq!(
            (conn, decode_frame(&frames).unwrap().header.serial),
            (CONN, 0)
        );
        assert_eq!(a.on_frame(CONN, &ack(0), 10), Handled::Taken);
        assert_eq!(a.on_frame(CONN, &uplink(b"x"), 10), Handled::Taken);
        a.submit(&call(8), 20).unwrap();
        assert_eq!(a.terminal_disconnected(&phone(), 30), 1);
        let seen: Vec<_> = events
            .lock()
            .iter()
            .map(|(e, conn)| match e {
                Event::Reply { token, kind, .. } => (format!("reply {token} {kind:?}"), *conn),
                Event::Uplink { content, .. } => (format!("uplink {content:?}"), *conn),
                other => (format!("{other:?}"), *conn),
            })
            .collect();
        // The disconnected terminal is forgotten: its last reply has no connection.
        assert_eq!(
            seen,
            [
                ("reply 7 Ack".to_string(), Some(CONN)),
                ("uplink [120]".to_string(), Some(CONN)),
                ("reply 8 Error".to_string(), None),
            ]
        );
        // A terminal without a connection is refused before anything else.
        assert_eq!(
            a.submit(&call(9), 40),
            Err(SharedSubmitError::Refused(SubmitError::NotConnected {
                phone: phone()
            }))
        );
        assert_eq!(a.stats().refused, 0);
    }

    #[test]
    fn a_replaced_callback_never_runs_again_and_the_replacement_waits_for_a_running_call() {
        let a = bound();
        let (entered, done) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (e2, d2) = (entered.clone(), done.clone());
        a.set_event_callback(Some(Box::new(move |_: &Event, _: Option<u64>| {
            e2.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(150));
            d2.fetch_add(1, Ordering::SeqCst);
        })))
        .unwrap();
        let a2 = a.clone();
        let t = std::thread::spawn(move || a2.on_frame(CONN, &uplink(b"1"), 0));
        wait_for(&entered, 1);
        let replaced = Arc::new(AtomicUsize::new(0));
        let r2 = replaced.clone();
        a.set_event_callback(Some(Box::new(move |_: &Event, _: Option<u64>| {
            r2.fetch_add(1, Ordering::SeqCst);
        })))
        .unwrap();
        assert_eq!(
            done.load(Ordering::SeqCst),
            1,
            "the running call finished first"
        );
        assert_eq!(t.join().unwrap(), Handled::Taken);
        a.on_frame(CONN, &uplink(b"2"), 0);
        assert_eq!(
            entered.load(Ordering::SeqCst),
            1,
            "the old callback never ran again"
        );
        assert_eq!(replaced.load(Ordering::SeqCst), 1);

        // The same for the send function.
        let (entered, done) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (e2, d2) = (entered.clone(), done.clone());
        a.set_send(Some(Box::new(move |_: u64, _: &Phone, _: &[u8]| {
            e2.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(150));
            d2.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })))
        .unwrap();
        let a2 = a.clone();
        let t = std::thread::spawn(move || a2.submit(&call(1), 0));
        wait_for(&entered, 1);
        a.set_send(None).unwrap();
        assert_eq!(done.load(Ordering::SeqCst), 1);
        assert!(t.join().unwrap().is_ok());
        assert_eq!(
            a.submit(&call(2), 0),
            Err(SharedSubmitError::NoSendFunction)
        );
        assert_eq!(entered.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn closing_or_replacing_itself_from_inside_a_callback_is_refused() {
        let a = bound();
        let weak: Weak<Shared> = Arc::downgrade(&a);
        let checked = Arc::new(AtomicUsize::new(0));
        let (w, c) = (weak.clone(), checked.clone());
        a.set_send(Some(Box::new(move |_: u64, _: &Phone, _: &[u8]| {
            let a = w.upgrade().unwrap();
            assert!(a.in_any_callback());
            assert_eq!(a.close(), Err(Reentered));
            assert_eq!(a.set_send(None), Err(Reentered));
            c.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })))
        .unwrap();
        let (w, c) = (weak, checked.clone());
        a.set_event_callback(Some(Box::new(move |_: &Event, _: Option<u64>| {
            let a = w.upgrade().unwrap();
            assert_eq!(a.close(), Err(Reentered));
            assert_eq!(a.set_event_callback(None), Err(Reentered));
            c.fetch_add(1, Ordering::SeqCst);
        })))
        .unwrap();
        a.submit(&call(1), 0).unwrap();
        a.on_frame(CONN, &ack(0), 1);
        assert_eq!(checked.load(Ordering::SeqCst), 2);
        // Refused calls changed nothing: both callbacks are still there...
        a.submit(&call(2), 2).unwrap();
        assert_eq!(checked.load(Ordering::SeqCst), 3);
        // ...until the adapter is closed from outside them.
        assert!(!a.in_any_callback());
        a.close().unwrap();
        assert_eq!(
            a.submit(&call(3), 3),
            Err(SharedSubmitError::NoSendFunction)
        );
        a.on_frame(CONN, &uplink(b"x"), 4);
        assert_eq!(checked.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn a_callback_may_call_the_adapter_again() {
        let a = bound();
        let weak = Arc::downgrade(&a);
        let sent = Arc::new(AtomicUsize::new(0));
        let (w, s2) = (weak.clone(), sent.clone());
        a.set_send(Some(Box::new(move |_: u64, _: &Phone, _: &[u8]| {
            // No lock is held: the send function reads the adapter.
            let a = w.upgrade().unwrap();
            assert_eq!(a.stats().sent, s2.fetch_add(1, Ordering::SeqCst) as u64 + 1);
            assert!(a.with_adapter(|x| x.pending_len()) >= 1);
            Ok(())
        })))
        .unwrap();
        let replies = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let (w, r2) = (weak, replies.clone());
        a.set_event_callback(Some(Box::new(move |e: &Event, _: Option<u64>| {
            let Event::Reply { token, .. } = e else {
                return;
            };
            r2.lock().push(*token);
            // The event callback submits the next request; its send function
            // runs inside this callback.
            let a = w.upgrade().unwrap();
            if *token == 1 {
                a.submit(&call(2), 10).unwrap();
            }
        })))
        .unwrap();
        a.submit(&call(1), 0).unwrap();
        a.on_frame(CONN, &ack(0), 5);
        assert_eq!(sent.load(Ordering::SeqCst), 2);
        assert_eq!(*replies.lock(), [1]);
        assert!(a.with_adapter(|x| x.contains(2)));
        a.on_frame(CONN, &ack(1), 15);
        assert_eq!(*replies.lock(), [1, 2]);
    }

    #[test]
    fn a_panicking_callback_is_caught() {
        let a = bound();
        a.set_send(Some(Box::new(|_: u64, _: &Phone, _: &[u8]| {
            panic!("send function bug")
        })))
        .unwrap();
        assert_eq!(a.submit(&call(1), 0), Err(SharedSubmitError::SendPanicked));
        assert!(
            !a.with_adapter(|x| x.contains(1)),
            "the request was released"
        );
        assert_eq!(a.stats().cancelled, 1);

        let calls = Arc::new(AtomicUsize::new(0));
        let c2 = calls.clone();
        a.set_send(Some(Box::new(|_: u64, _: &Phone, _: &[u8]| Ok(()))))
            .unwrap();
        a.set_event_callback(Some(Box::new(move |_: &Event, _: Option<u64>| {
            if c2.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("event callback bug")
            }
        })))
        .unwrap();
        a.submit(&call(2), 0).unwrap();
        a.submit(&call(3), 0).unwrap();
        // The first reply's callback panics; the second is delivered all the same.
        assert_eq!(a.terminal_disconnected(&phone(), 1), 2);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert!(!a.in_any_callback());
    }

    #[test]
    fn a_request_whose_frames_cannot_be_written_is_released_or_answered_send_failed() {
        let a = bound();
        let (_, events) = recording(&a);
        let answer = |token| call(token).with_completion(Completion::Answer);
        a.submit(&answer(1), 0).unwrap();
        assert_eq!(
            a.submit(&answer(2), 0),
            Ok(Submitted::Queued { position: 0 })
        );
        a.set_send(Some(Box::new(|_: u64, _: &Phone, _: &[u8]| {
            Err("socket gone")
        })))
        .unwrap();
        // Submitted now, the request is released and the failure returned...
        assert_eq!(
            a.submit(&call(3), 0),
            Err(SharedSubmitError::SendFailed("socket gone"))
        );
        assert!(!a.with_adapter(|x| x.contains(3)));
        // ...queued, it is answered with `send failed` when it comes due.
        assert!(a.cancel(1, 5));
        assert_eq!(
            *events.lock(),
            [(
                Event::Reply {
                    token: 2,
                    phone: phone(),
                    kind: ReplyKind::Error,
                    payload: error_payload(ErrorReason::SendFailed),
                },
                Some(CONN)
            )]
        );
        assert_eq!(a.with_adapter(|x| x.len()), 0);
    }
}
