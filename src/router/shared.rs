//! [`SharedRouter`]: a router that any number of threads drive at once, with
//! the callbacks it calls. The device client runs on it, and so does the C
//! API's `rrpc_router`.
//!
//! It owns one lock around the [`Router`], the request callbacks (one shared by
//! every device, and optionally one per device), and the publish function that
//! sends replies. Callbacks run with no lock held, on the thread that handed
//! the router the message (or asked for the reply), so they may call the router
//! again. Replacing or removing a callback waits for a call of it in progress
//! on another thread, and refuses from inside that very callback; after it
//! returns, the old callback never runs again. The router reads no clock: every
//! call that needs the time takes `now_ms`.

use std::any::Any;
use std::convert::Infallible;
use std::ffi::CStr;
use std::fmt;
use std::mem::MaybeUninit;
use std::sync::Arc;

use parking_lot::Mutex;

use super::{
    Attachment, DeviceError, Dropped, ReceivedTopic, ReplyError, Router, RouterConfig, RouterStats,
};
use crate::callback::{self, Callback, CallbackSlot, Kind, Reentered};
use crate::dialect::{Dialect, Identity};

/// A request handed to a callback: everything is valid only during the call;
/// keep the `token` to reply later.
pub struct Request<'a> {
    /// Names the request in [`SharedRouter::reply`]. Never 0.
    pub token: u64,
    /// The device's dialect.
    pub dialect: Dialect,
    /// The RRpc ContentType the caller sent, if any (see
    /// [`crate::dialect::CONTENT_TYPE_SEPARATOR`] for the wire format).
    pub content_type: Option<u8>,
    /// The request payload, binary-safe.
    pub payload: &'a [u8],
    /// The time (on the clock of the `now_ms` the router is given) after which
    /// a reply is refused.
    pub deadline_ms: u64,
    strings: &'a RequestStrings,
}

impl<'a> Request<'a> {
    /// The message id (Alibaba messageId, Tencent processId), without a
    /// ContentType suffix.
    pub fn message_id(&self) -> &'a str {
        self.strings.get(MESSAGE_ID).unwrap_or_default()
    }

    /// The device's product key (Tencent: product id).
    pub fn product_key(&self) -> &'a str {
        self.strings.get(PRODUCT_KEY).unwrap_or_default()
    }

    /// The device's name.
    pub fn device_name(&self) -> &'a str {
        self.strings.get(DEVICE_NAME).unwrap_or_default()
    }

    /// The device's custom topic (Alibaba custom-topic RRPC), if it has one.
    pub fn custom_topic(&self) -> Option<&'a str> {
        self.strings.get(CUSTOM_TOPIC)
    }

    /// The method, service or command name, for dialects whose request topic
    /// carries one (alibaba-service: the service identifier; azure: the method).
    pub fn name(&self) -> Option<&'a str> {
        self.strings.get(NAME)
    }

    /// The device the request is for.
    pub fn identity(&self) -> Identity<'a> {
        Identity {
            product_key: self.product_key(),
            device_name: self.device_name(),
            custom_topic: self.custom_topic(),
        }
    }

    /// The strings above, NUL-terminated, for handing to C as they are: message
    /// id, product key, device name, custom topic, name (absent: `None`).
    pub fn c_strings(&self) -> [Option<&'a CStr>; STRINGS] {
        [0, 1, 2, 3, 4].map(|i| self.strings.c_str(i))
    }
}

impl fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("token", &self.token)
            .field("dialect", &self.dialect)
            .field("message_id", &self.message_id())
            .field("name", &self.name())
            .field("identity", &self.identity())
            .field("content_type", &self.content_type)
            .field("payload_len", &self.payload.len())
            .field("deadline_ms", &self.deadline_ms)
            .finish()
    }
}

const MESSAGE_ID: usize = 0;
const PRODUCT_KEY: usize = 1;
const DEVICE_NAME: usize = 2;
const CUSTOM_TOPIC: usize = 3;
const NAME: usize = 4;
/// How many strings a request has ([`Request::c_strings`]).
pub const STRINGS: usize = 5;

/// The strings of a request, copied out of the router (the device may be
/// removed once the lock is released) into one NUL-separated buffer: on the
/// stack, on the heap for very long custom topics. Only the bytes written are
/// read.
struct RequestStrings {
    stack: [MaybeUninit<u8>; STACK_BYTES],
    heap: Vec<u8>,
    /// Start of each string in the buffer in use, `usize::MAX` when absent.
    starts: [usize; STRINGS],
    lens: [usize; STRINGS],
}

/// Room for a request's strings without a heap allocation: message id, product
/// key and device name (128 bytes at most each) and a custom topic of up to
/// about 100 bytes.
const STACK_BYTES: usize = 512;

impl RequestStrings {
    /// An empty buffer: nothing written yet. Filled in place by
    /// [`RequestStrings::fill`], so that its 512 bytes are never moved.
    fn new() -> RequestStrings {
        RequestStrings {
            stack: [MaybeUninit::uninit(); STACK_BYTES],
            heap: Vec::new(),
            starts: [usize::MAX; STRINGS],
            lens: [0; STRINGS],
        }
    }

    /// Copies the strings in.
    fn fill(&mut self, message_id: &str, id: &Identity<'_>, name: Option<&str>) {
        let s = self;
        let parts: [Option<&str>; STRINGS] = [
            Some(message_id),
            Some(id.product_key),
            Some(id.device_name),
            id.custom_topic,
            name,
        ];
        let need: usize = parts.iter().flatten().map(|p| p.len() + 1).sum();
        if need > STACK_BYTES {
            s.heap.reserve_exact(need);
        }
        let mut at = 0;
        for (i, p) in parts.iter().enumerate() {
            if let Some(p) = p {
                s.starts[i] = at;
                s.lens[i] = p.len();
                // Identities and message ids hold no NUL (they are validated), so
                // each string ends at its own terminator.
                if need > STACK_BYTES {
                    s.heap.extend_from_slice(p.as_bytes());
                    s.heap.push(0);
                } else {
                    // SAFETY: `at + p.len() + 1 <= need <= STACK_BYTES`: in bounds;
                    // u8 and MaybeUninit<u8> have the same layout.
                    unsafe {
                        let dst = s.stack.as_mut_ptr().add(at).cast::<u8>();
                        std::ptr::copy_nonoverlapping(p.as_ptr(), dst, p.len());
                        *dst.add(p.len()) = 0;
                    }
                }
                at += p.len() + 1;
            }
        }
    }

    /// The `len + 1` bytes (the string and its NUL) at `start`.
    fn bytes(&self, start: usize, len: usize) -> &[u8] {
        if !self.heap.is_empty() {
            return &self.heap[start..start + len + 1];
        }
        let written = &self.stack[start..start + len + 1];
        // SAFETY: `new` wrote every byte of each string and its terminator, and
        // only those ranges are read.
        unsafe { &*(written as *const [MaybeUninit<u8>] as *const [u8]) }
    }

    fn get(&self, i: usize) -> Option<&str> {
        let start = *self.starts.get(i).filter(|&&s| s != usize::MAX)?;
        let b = self.bytes(start, self.lens[i]);
        let text = &b[..b.len() - 1];
        debug_assert!(std::str::from_utf8(text).is_ok());
        // SAFETY: the bytes were copied from a `&str` whole.
        Some(unsafe { std::str::from_utf8_unchecked(text) })
    }

    fn c_str(&self, i: usize) -> Option<&CStr> {
        let start = *self.starts.get(i).filter(|&&s| s != usize::MAX)?;
        let b = self.bytes(start, self.lens[i]);
        debug_assert!(CStr::from_bytes_with_nul(b).is_ok());
        // SAFETY: one NUL, at the end: the string before it holds none (validated
        // identities and message ids).
        Some(unsafe { CStr::from_bytes_with_nul_unchecked(b) })
    }
}

/// A request callback.
pub type RequestFn = dyn Fn(&Request<'_>) + Send + Sync;

/// The publish function of a [`SharedRouter`]: sends a reply's payload on its
/// topic (QoS 0), or says why it could not. The topic is the caller's to keep
/// (an MQTT stack that wants an owned topic takes it as it is); it was made
/// with room for a terminating NUL, so turning it into a C string does not
/// allocate again. The third argument is the Correlation Data an MQTT 5 reply
/// carries (requests of [`Dialect::Mqtt5`]; `None` for every other dialect).
pub type PublishFn<E> = dyn Fn(String, &[u8], Option<&[u8]>) -> Result<(), E> + Send + Sync;

/// What became of an accepted request ([`SharedRouter::handle_message`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Its callback ran.
    Delivered,
    /// No callback was set: it waits for a reply all the same, and expires.
    NoCallback,
    /// Its callback panicked (caught); the request, named by its token, waits
    /// for a reply all the same.
    Panicked(u64),
}

/// Which filters [`SharedRouter::filters`] lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterMode {
    /// One filter per registered device, such as `/sys/pk/dn/rrpc/request/+`.
    PerDevice,
    /// One wildcard per dialect in use (for gateways serving many devices):
    /// requests for devices that are not registered then arrive too, and are
    /// dropped and counted (`unknown_device`).
    Wildcard,
}

/// A [`Router`] shared between threads, with its callbacks: see the module
/// documentation. `E` is what the publish function fails with.
pub struct SharedRouter<E = Infallible> {
    router: Mutex<Router>,
    /// The callback of devices registered without their own.
    request_callback: CallbackSlot<RequestFn>,
    publish: CallbackSlot<PublishFn<E>>,
}

impl<E> fmt::Debug for SharedRouter<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedRouter")
            .field("router", &*self.router.lock())
            .finish_non_exhaustive()
    }
}

/// A device's own callback, as the router keeps it (its attachment).
fn own_callback(a: &Arc<dyn Any + Send + Sync>) -> Option<&Callback<RequestFn>> {
    a.downcast_ref::<Callback<RequestFn>>()
}

impl<E> SharedRouter<E> {
    /// A router with `cfg` (checked: see [`RouterConfig::validate`]).
    pub fn new(cfg: RouterConfig) -> Result<SharedRouter<E>, String> {
        SharedRouter::with_callback_kind(cfg, Kind::Callback)
    }

    /// As [`SharedRouter::new`], with the shared request callback recording
    /// `kind` on the thread that runs it (the device client's, so that a
    /// handler cannot stop its own client).
    pub(crate) fn with_callback_kind(
        cfg: RouterConfig,
        kind: Kind,
    ) -> Result<SharedRouter<E>, String> {
        cfg.validate()?;
        Ok(SharedRouter {
            router: Mutex::new(Router::new(cfg)),
            request_callback: CallbackSlot::of_kind(kind),
            publish: CallbackSlot::default(),
        })
    }

    /// The key of "inside this router's callbacks" on a thread.
    fn key(&self) -> usize {
        self as *const Self as usize
    }

    /// Sets (or with `None` removes) the callback of devices registered
    /// without their own. When it returns, the callback it replaced is not
    /// running on any other thread and will not run again; from inside that
    /// callback it is refused.
    pub fn set_request_callback(&self, f: Option<Box<RequestFn>>) -> Result<(), Reentered> {
        self.request_callback.set(f)
    }

    /// Sets (or with `None` removes) the publish function, released as
    /// [`SharedRouter::set_request_callback`] releases a callback.
    pub fn set_publish(&self, f: Option<Box<PublishFn<E>>>) -> Result<(), Reentered> {
        self.publish.set(f)
    }

    /// Whether a shared request callback is set (a hint: it may change).
    pub fn has_request_callback(&self) -> bool {
        self.request_callback.is_set()
    }

    /// Whether this thread is inside the shared request callback.
    pub fn in_request_callback(&self) -> bool {
        self.request_callback.running_here()
    }

    /// Registers a device, with its own callback or (`None`) the shared one.
    /// Subscribing its filter ([`super::Device::filter`]) is the transport's job.
    pub fn add_device(
        &self,
        dialect: Dialect,
        id: &Identity<'_>,
        callback: Option<Box<RequestFn>>,
    ) -> Result<Arc<super::Device>, DeviceError> {
        let attachment =
            Attachment(callback.map(|f| Arc::new(Callback::new(f)) as Arc<dyn Any + Send + Sync>));
        self.router.lock().add_device_with(dialect, id, attachment)
    }

    /// Unregisters a device; its pending requests are cancelled (replies fail
    /// with [`ReplyError::DeviceRemoved`]). When it returns, the device's own
    /// callback is not running on another thread and never runs again. From
    /// inside that callback it is refused ([`DeviceError::Reentered`]) and
    /// changes nothing.
    pub fn remove_device(
        &self,
        dialect: Dialect,
        id: &Identity<'_>,
        now_ms: u64,
    ) -> Result<Arc<super::Device>, DeviceError> {
        let (device, own) = {
            let mut r = self.router.lock();
            let own = r.attachment(dialect, id).cloned();
            if own
                .as_ref()
                .and_then(own_callback)
                .is_some_and(|cb| cb.running_here())
            {
                return Err(DeviceError::Reentered);
            }
            (r.remove_device(dialect, id, now_ms)?, own)
        };
        if let Some(cb) = own.as_ref().and_then(own_callback) {
            cb.release().map_err(|_| DeviceError::Reentered)?;
        }
        Ok(device)
    }

    /// Runs `f` with the router locked: for reading devices, filters and
    /// deadlines. `f` must not call back into this router.
    pub fn with_router<T>(&self, f: impl FnOnce(&Router) -> T) -> T {
        f(&self.router.lock())
    }

    /// The subscription filters, in `mode`.
    pub fn filters(&self, mode: FilterMode) -> Vec<String> {
        let r = self.router.lock();
        match mode {
            FilterMode::PerDevice => r.devices().map(|d| d.filter().to_string()).collect(),
            // The mqtt5 dialect has no wildcard narrower than `#`: its
            // devices' own filters.
            FilterMode::Wildcard => Dialect::all()
                .filter(|&d| !d.uses_mqtt5_properties() && r.devices().any(|x| x.dialect == d))
                .map(|d| d.request_wildcard())
                .chain(
                    r.devices()
                        .filter(|x| x.dialect.uses_mqtt5_properties())
                        .map(|x| x.filter().to_string()),
                )
                .collect(),
        }
    }

    /// Runs `f` as a callback of this router (every callback runs so, and the
    /// C API's filter callback too), so that [`SharedRouter::close`] refuses
    /// from inside it.
    pub fn run_as_callback<T>(&self, f: impl FnOnce() -> T) -> T {
        callback::enter(Kind::Object, self.key(), f)
    }

    /// Takes in one received MQTT message with its retain flag. A request for
    /// a registered device is accepted and its callback runs before this
    /// returns, on this thread, with no lock held; a request without a callback
    /// waits for a reply all the same (and expires). A callback that panics is
    /// caught ([`Delivery::Panicked`]). Anything else is dropped, with the
    /// reason, and counted. A retained request is never executed. The topic is
    /// text (`&str`, not checked again) or bytes (see [`ReceivedTopic`]).
    pub fn handle_message<'t>(
        &self,
        topic: impl Into<ReceivedTopic<'t>>,
        payload: &'t [u8],
        retained: bool,
        now_ms: u64,
    ) -> Result<Delivery, Dropped> {
        self.deliver(|r| r.handle_received(topic, payload, retained, now_ms))
    }

    /// [`SharedRouter::handle_message`] with the MQTT 5 properties of the
    /// PUBLISH (see [`Router::handle_received_v5`]): what an MQTT 5 transport
    /// calls, so that [`Dialect::Mqtt5`] devices receive their requests.
    pub fn handle_message_v5(
        &self,
        topic: &str,
        payload: &[u8],
        retained: bool,
        props: &mut super::RequestProperties<'_>,
        now_ms: u64,
    ) -> Result<Delivery, Dropped> {
        self.deliver(|r| r.handle_received_v5(topic, payload, retained, props, now_ms))
    }

    /// Takes in what `take` accepts and runs its callback.
    fn deliver<'t>(
        &self,
        take: impl FnOnce(&mut Router) -> Result<super::Accepted<'t>, Dropped>,
    ) -> Result<Delivery, Dropped> {
        let mut strings = RequestStrings::new();
        let (req, own) = {
            let mut r = self.router.lock();
            let a = take(&mut r)?;
            // What the callback needs is copied while the router is held: the
            // device may be removed as soon as it is released.
            let d = r
                .request_device(a.device)
                .expect("an accepted request's device is registered");
            strings.fill(a.message_id, &d.identity, a.name);
            let own = d.attachment.cloned();
            // The payload is the request's: an envelope's params, else the body.
            let req = (a.token, d.dialect, a.content_type, a.deadline_ms, a.payload);
            (req, own)
        };
        let (token, dialect, content_type, deadline_ms, payload) = req;
        let request = Request {
            token,
            dialect,
            content_type,
            payload,
            deadline_ms,
            strings: &strings,
        };
        let call = |f: &RequestFn| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&request))).is_ok()
        };
        let ran = self.run_as_callback(|| match own.as_ref().and_then(own_callback) {
            Some(cb) => cb.call(call),
            None => self.request_callback.call(call),
        });
        Ok(match ran {
            Some(true) => Delivery::Delivered,
            Some(false) => Delivery::Panicked(token),
            None => Delivery::NoCallback,
        })
    }

    /// Answers request `token` with `payload`: builds the response topic and
    /// calls the publish function (QoS 0) with no lock held. One reply per
    /// request; a reply that fails changes nothing, so it may be tried again
    /// until the deadline.
    pub fn reply(&self, token: u64, payload: &[u8], now_ms: u64) -> Result<(), ReplyError<E>> {
        self.reply_with_status(token, None, payload, now_ms)
    }

    /// [`SharedRouter::reply`] with a status code for the dialects whose
    /// replies carry one (see [`Router::reply_with_status`]); `None` is 200.
    pub fn reply_with_status(
        &self,
        token: u64,
        status: Option<u16>,
        payload: &[u8],
        now_ms: u64,
    ) -> Result<(), ReplyError<E>> {
        if !self.publish.is_set() {
            return Err(ReplyError::NoPublish);
        }
        let out = self
            .router
            .lock()
            .begin_reply_v5(token, status, payload, now_ms)
            .map_err(ReplyError::widen)?;
        let (topic, body, correlation) = (out.topic, out.payload, out.correlation);
        let sent = self.run_as_callback(|| {
            self.publish
                .call(|f| f(topic, &body, correlation.as_deref()))
        });
        self.router
            .lock()
            .end_reply(token, matches!(sent, Some(Ok(()))), now_ms);
        match sent {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(ReplyError::Send(e)),
            None => Err(ReplyError::NoPublish),
        }
    }

    /// Expires the requests whose deadline passed; returns how many, and the
    /// earliest deadline still pending.
    pub fn tick(&self, now_ms: u64) -> (usize, Option<u64>) {
        let mut r = self.router.lock();
        let n = r.expire(now_ms);
        (n, r.next_deadline())
    }

    /// The earliest deadline of a pending request, if any.
    pub fn next_deadline(&self) -> Option<u64> {
        self.router.lock().next_deadline()
    }

    /// Requests waiting for a reply now.
    pub fn pending(&self) -> usize {
        self.router.lock().pending_len()
    }

    /// The counters and gauges now.
    pub fn stats(&self) -> RouterStats {
        self.router.lock().stats()
    }

    /// Whether this thread is inside any callback of this router or its
    /// publish function.
    pub fn in_any_callback(&self) -> bool {
        // Every callback runs inside this router's frame (`run_as_callback`):
        // the record is the thread's own, whatever another thread did to the
        // slot meanwhile (a callback replaced while it runs is still inside).
        callback::inside(Kind::Object, self.key())
    }

    /// Releases every callback and the publish function, waiting for calls in
    /// progress on other threads; none runs after it returns. Refused from
    /// inside any of them (it would wait for itself).
    pub fn close(&self) -> Result<(), Reentered> {
        callback::release_outside(self.key(), || {
            self.request_callback.set(None)?;
            self.publish.set(None)?;
            let own: Vec<_> = self.router.lock().attachments().cloned().collect();
            for a in &own {
                if let Some(cb) = own_callback(a) {
                    cb.release()?;
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    const PK: &str = "a1B2c3";

    fn dev(name: &str) -> Identity<'_> {
        Identity {
            product_key: PK,
            device_name: name,
            custom_topic: None,
        }
    }

    fn topic(name: &str, id: u64) -> String {
        format!("/sys/{PK}/{name}/rrpc/request/{id}")
    }

    type Sent = Arc<parking_lot::Mutex<Vec<(String, Vec<u8>)>>>;

    fn echo_router() -> (Arc<SharedRouter<()>>, Sent) {
        let r = Arc::new(SharedRouter::<()>::new(RouterConfig::default()).unwrap());
        let sent: Sent = Default::default();
        let s2 = sent.clone();
        r.set_publish(Some(Box::new(
            move |t: String, p: &[u8], _: Option<&[u8]>| {
                s2.lock().push((t, p.to_vec()));
                Ok(())
            },
        )))
        .unwrap();
        let r2 = Arc::downgrade(&r);
        r.set_request_callback(Some(Box::new(move |req: &Request<'_>| {
            let r = r2.upgrade().unwrap();
            r.reply(req.token, req.payload, 1).unwrap();
        })))
        .unwrap();
        (r, sent)
    }

    #[test]
    fn a_request_reaches_its_callback_which_may_reply_at_once() {
        let (r, sent) = echo_router();
        r.add_device(Dialect::AlibabaSystem, &dev("d1"), None)
            .unwrap();
        assert_eq!(
            r.handle_message(topic("d1", 42).as_bytes(), b"ping", false, 0),
            Ok(Delivery::Delivered)
        );
        assert_eq!(
            sent.lock()[0],
            (
                "/sys/a1B2c3/d1/rrpc/response/42".to_string(),
                b"ping".to_vec()
            )
        );
        let s = r.stats();
        assert_eq!((s.messages, s.requests, s.replied, s.pending), (1, 1, 1, 0));
        assert_eq!(
            r.handle_message(topic("d1", 43).as_bytes(), b"x", true, 0),
            Err(Dropped::Retained)
        );
        assert_eq!(r.stats().retained, 1);
    }

    #[test]
    fn a_device_callback_is_released_by_removing_the_device_but_not_from_inside() {
        let r = Arc::new(SharedRouter::<()>::new(RouterConfig::default()).unwrap());
        let calls = Arc::new(AtomicUsize::new(0));
        let (r2, c2) = (Arc::downgrade(&r), calls.clone());
        r.add_device(
            Dialect::AlibabaSystem,
            &dev("d1"),
            Some(Box::new(move |req: &Request<'_>| {
                c2.fetch_add(1, Ordering::SeqCst);
                let r = r2.upgrade().unwrap();
                assert_eq!(req.device_name(), "d1");
                assert_eq!(
                    r.remove_device(Dialect::AlibabaSystem, &dev("d1"), 0)
                        .unwrap_err(),
                    DeviceError::Reentered
                );
            })),
        )
        .unwrap();
        r.handle_message(topic("d1", 1).as_bytes(), b"", false, 0)
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        r.remove_device(Dialect::AlibabaSystem, &dev("d1"), 0)
            .unwrap();
        assert_eq!(
            r.handle_message(topic("d1", 2).as_bytes(), b"", false, 0),
            Err(Dropped::UnknownDevice)
        );
    }

    #[test]
    fn replacing_a_callback_waits_for_a_call_in_progress_and_close_refuses_from_inside() {
        let r = Arc::new(SharedRouter::<()>::new(RouterConfig::default()).unwrap());
        r.add_device(Dialect::AlibabaSystem, &dev("d1"), None)
            .unwrap();
        let (entered, done) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (e2, d2, r2) = (entered.clone(), done.clone(), Arc::downgrade(&r));
        r.set_request_callback(Some(Box::new(move |_req: &Request<'_>| {
            e2.fetch_add(1, Ordering::SeqCst);
            assert_eq!(r2.upgrade().unwrap().close(), Err(Reentered));
            std::thread::sleep(Duration::from_millis(150));
            d2.fetch_add(1, Ordering::SeqCst);
        })))
        .unwrap();
        let r3 = r.clone();
        let t = std::thread::spawn(move || {
            r3.handle_message(topic("d1", 7).as_bytes(), b"", false, 0)
                .unwrap();
        });
        while entered.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        r.set_request_callback(None).unwrap();
        assert_eq!(done.load(Ordering::SeqCst), 1, "the call finished first");
        t.join().unwrap();
        r.close().unwrap();
    }

    #[test]
    fn a_callback_that_panics_is_caught_and_its_request_still_waits() {
        let r = SharedRouter::<()>::new(RouterConfig::default()).unwrap();
        r.add_device(Dialect::AlibabaSystem, &dev("d1"), None)
            .unwrap();
        assert_eq!(
            r.handle_message(topic("d1", 1).as_bytes(), b"", false, 0),
            Ok(Delivery::NoCallback)
        );
        let token = Arc::new(AtomicUsize::new(0));
        let t2 = token.clone();
        r.set_request_callback(Some(Box::new(move |req: &Request<'_>| {
            t2.store(req.token as usize, Ordering::SeqCst);
            panic!("handler bug")
        })))
        .unwrap();
        let got = r.handle_message(topic("d1", 2).as_bytes(), b"", false, 0);
        assert_eq!(
            got,
            Ok(Delivery::Panicked(token.load(Ordering::SeqCst) as u64))
        );
        assert_eq!(r.pending(), 2);
    }

    #[test]
    fn a_reply_without_a_publish_function_keeps_its_token() {
        let r = SharedRouter::<()>::new(RouterConfig::default()).unwrap();
        r.add_device(Dialect::AlibabaSystem, &dev("d1"), None)
            .unwrap();
        let token = Arc::new(AtomicUsize::new(0));
        let t2 = token.clone();
        r.set_request_callback(Some(Box::new(move |req: &Request<'_>| {
            t2.store(req.token as usize, Ordering::SeqCst)
        })))
        .unwrap();
        r.handle_message(topic("d1", 9).as_bytes(), b"", false, 0)
            .unwrap();
        let t = token.load(Ordering::SeqCst) as u64;
        assert_eq!(r.reply(t, b"", 1), Err(ReplyError::NoPublish));
        r.set_publish(Some(Box::new(|_: String, _: &[u8], _: Option<&[u8]>| {
            Err(())
        })))
        .unwrap();
        assert_eq!(r.reply(t, b"", 1), Err(ReplyError::Send(())));
        r.set_publish(Some(Box::new(|_: String, _: &[u8], _: Option<&[u8]>| {
            Ok(())
        })))
        .unwrap();
        assert_eq!(r.reply(t, b"", 1), Ok(()));
        assert_eq!(r.reply(t, b"", 1), Err(ReplyError::AlreadyReplied));
        assert_eq!(r.stats().send_failures, 1);
    }

    #[test]
    fn filters_per_device_and_per_dialect() {
        let r = SharedRouter::<()>::new(RouterConfig::default()).unwrap();
        r.add_device(Dialect::AlibabaSystem, &dev("d1"), None)
            .unwrap();
        r.add_device(Dialect::Tencent, &dev("d2"), None).unwrap();
        assert_eq!(
            r.filters(FilterMode::PerDevice),
            ["/sys/a1B2c3/d1/rrpc/request/+", "$rrpc/rxd/a1B2c3/d2/+"]
        );
        assert_eq!(
            r.filters(FilterMode::Wildcard),
            ["/sys/+/+/rrpc/request/+", "$rrpc/rxd/+/+/+"]
        );
    }

    #[test]
    fn long_custom_topics_reach_the_callback_whole() {
        let r = SharedRouter::<()>::new(RouterConfig::default()).unwrap();
        let long = format!("/{}", "t".repeat(900));
        let id = Identity {
            product_key: PK,
            device_name: "d1",
            custom_topic: Some(&long),
        };
        r.add_device(Dialect::AlibabaCustom, &id, None).unwrap();
        let seen = Arc::new(parking_lot::Mutex::new(String::new()));
        let s2 = seen.clone();
        r.set_request_callback(Some(Box::new(move |req: &Request<'_>| {
            *s2.lock() = req.custom_topic().unwrap().to_string();
            let c = req.c_strings();
            assert_eq!(
                c[3].unwrap().to_bytes(),
                req.custom_topic().unwrap().as_bytes()
            );
            assert_eq!(c[0].unwrap().to_str().unwrap(), "5");
        })))
        .unwrap();
        r.handle_message(format!("/ext/rrpc/5{long}").as_bytes(), b"", false, 0)
            .unwrap();
        assert_eq!(*seen.lock(), long);
    }
}
