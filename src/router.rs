//! The transport-agnostic core: which devices are served, which requests are
//! pending, and what each reply must look like.
//!
//! The router does no I/O, owns no threads and reads no clock: time comes in as
//! milliseconds on any monotonic clock the caller chooses (the built-in client
//! uses `CLOCK_MONOTONIC`). Both transports drive it: the built-in MQTT client and
//! a C gateway that feeds messages from its own MQTT stack.
//!
//! Rules it enforces:
//! - every accepted request gets a fresh token and a deadline; it can be answered
//!   exactly once, and not after its deadline;
//! - a second delivery of the same message id for the same device is dropped
//!   (MQTT QoS 1 redelivery, a broker replaying a session, a caller's retry);
//! - a reply that comes back to the device's own subscription (custom-topic RRPC
//!   answers on the request topic itself) is recognised as its own and dropped;
//! - at most `max_pending` requests wait at once; expired entries are removed by
//!   [`Router::expire`] and, lazily, whenever a request or reply needs room.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use hashbrown::{DefaultHashBuilder, Equivalent, HashMap};
use std::hash::BuildHasher;

use crate::dialect::{self, Dialect, Identity, IdentityError, ParsedTopic, TopicError};

mod index;
use index::SlotIndex;

/// Default bound of the pending-request table.
pub const DEFAULT_MAX_PENDING: usize = 1024;
/// Default largest payload accepted in a request or a reply: 256 KiB.
pub const DEFAULT_MAX_PAYLOAD: usize = 256 * 1024;
/// How long a finished request is remembered, so that a redelivery or the echo of
/// its reply is recognised: longer than any caller waits (8 s) with a wide margin.
pub const DEFAULT_HISTORY_MS: u64 = 30_000;

/// Router settings.
#[derive(Clone, Debug)]
pub struct RouterConfig {
    /// Most requests waiting for a reply at once; more are dropped and counted.
    pub max_pending: usize,
    /// Largest request or reply payload, in bytes.
    pub max_payload: usize,
    /// Time a request may wait for its reply, in ms; 0 takes the dialect's
    /// caller timeout (8000 for Alibaba, 4000 for Tencent).
    pub request_timeout_ms: u32,
    /// How long finished requests are remembered for duplicate and echo detection.
    pub history_ms: u64,
    /// Most finished requests remembered; 0 means `max_pending`, at least 1024.
    /// Own-reply echoes come back within milliseconds; the bound only matters
    /// for redeliveries at high request rates (30 s at 34 requests/s by default).
    pub max_history: usize,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            max_pending: DEFAULT_MAX_PENDING,
            max_payload: DEFAULT_MAX_PAYLOAD,
            request_timeout_ms: 0,
            history_ms: DEFAULT_HISTORY_MS,
            max_history: 0,
        }
    }
}

impl RouterConfig {
    fn history_cap(&self) -> usize {
        if self.max_history > 0 {
            self.max_history
        } else {
            self.max_pending.max(1024)
        }
    }
}

/// Data a transport attaches to a device when it registers it (the C router keeps
/// the device's callback there). The router only stores it.
#[derive(Clone, Default)]
pub struct Attachment(pub Option<Arc<dyn std::any::Any + Send + Sync>>);

impl fmt::Debug for Attachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Attachment(..)"
        } else {
            "Attachment(None)"
        })
    }
}

/// A registered device: identity, dialect and subscription filter, for the
/// transport (subscribing, presence) and the application.
///
/// Every string of a device lives in one buffer; strings that occur inside an
/// earlier one (the product key and device name inside a system topic's filter)
/// are stored once. Dispatching a request does not read this record: the router
/// keeps what it needs per request in a compact record of its own.
pub struct Device {
    pub dialect: Dialect,
    has_custom_topic: bool,
    text: Box<str>,
    spans: [Span; PARTS],
}

/// Where one string of a device sits in its text: start and length. Identities
/// are bounded (128-byte names, 1 KiB custom topics), so a device's text stays
/// far below 64 KiB.
#[derive(Clone, Copy, Default)]
struct Span(u16, u16);

impl Span {
    fn of(text: &str, span: Span) -> &str {
        let start = usize::from(span.0);
        &text[start..start + usize::from(span.1)]
    }
}

/// Lays `parts` out in one string, each stored once: a part found inside what is
/// already there is not appended again. Returns the text and each part's span.
fn pack<const N: usize>(parts: [&str; N]) -> (String, [Span; N]) {
    let mut text = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    let mut spans = [Span::default(); N];
    for (i, p) in parts.into_iter().enumerate() {
        let start = match text.find(p) {
            Some(at) => at,
            None => {
                text.push_str(p);
                text.len() - p.len()
            }
        };
        spans[i] = Span(to_u16(start), to_u16(p.len()));
    }
    to_u16(text.len());
    (text, spans)
}

const FILTER: usize = 0;
const PRODUCT_KEY: usize = 1;
const DEVICE_NAME: usize = 2;
const CUSTOM_TOPIC: usize = 3;
const PARTS: usize = 4;

impl Device {
    fn new(dialect: Dialect, id: &Identity<'_>) -> Device {
        let filter = dialect.subscribe_filter(id);
        // In the order of the part indices.
        let (text, spans) = pack([
            &filter,
            id.product_key,
            id.device_name,
            id.custom_topic.unwrap_or(""),
        ]);
        Device {
            dialect,
            has_custom_topic: id.custom_topic.is_some(),
            text: text.into_boxed_str(),
            spans,
        }
    }

    fn part(&self, i: usize) -> &str {
        Span::of(&self.text, self.spans[i])
    }

    pub fn product_key(&self) -> &str {
        self.part(PRODUCT_KEY)
    }

    pub fn device_name(&self) -> &str {
        self.part(DEVICE_NAME)
    }

    pub fn custom_topic(&self) -> Option<&str> {
        self.has_custom_topic.then(|| self.part(CUSTOM_TOPIC))
    }

    /// The MQTT subscription filter that delivers this device's requests.
    pub fn filter(&self) -> &str {
        self.part(FILTER)
    }

    /// The topic the reply to `message_id` goes out on.
    pub fn response_topic(&self, message_id: &str) -> String {
        self.dialect.response_topic(&self.identity(), message_id)
    }

    pub fn identity(&self) -> Identity<'_> {
        Identity {
            product_key: self.product_key(),
            device_name: self.device_name(),
            custom_topic: self.custom_topic(),
        }
    }
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device")
            .field("dialect", &self.dialect)
            .field("product_key", &self.product_key())
            .field("device_name", &self.device_name())
            .field("custom_topic", &self.custom_topic())
            .field("filter", &self.filter())
            .finish()
    }
}

/// Offsets of a device's text. Validated identities keep it far below the bound.
fn to_u16(n: usize) -> u16 {
    u16::try_from(n).expect("a validated identity's strings fit in 64 KiB")
}

/// Counters, all monotonic since the router was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages handed to [`Router::handle_message`].
    pub messages: u64,
    /// Requests accepted and handed to the application.
    pub requests: u64,
    /// Replies accepted for sending.
    pub replied: u64,
    /// Requests whose deadline passed without a reply.
    pub expired: u64,
    /// Second deliveries of a request already seen.
    pub duplicates: u64,
    /// Own replies that came back on the request subscription (custom topics).
    pub own_replies: u64,
    /// RRPC-looking topics that break the dialect's format.
    pub malformed: u64,
    /// Well-formed requests for a device that is not registered.
    pub unknown_device: u64,
    /// Requests dropped because `max_pending` requests were already waiting.
    pub table_full: u64,
    /// Requests dropped because their payload exceeded `max_payload`.
    pub too_large: u64,
    /// Replies refused because the request's deadline had passed.
    pub late_replies: u64,
    /// Replies refused for an unknown, finished or cancelled token.
    pub bad_tokens: u64,
    /// Replies the transport failed to send.
    pub send_failures: u64,
    /// Messages that were not RRPC requests at all.
    pub not_rrpc: u64,
}

/// A request accepted by the router, for the application to answer.
#[derive(Clone, Debug)]
pub struct Accepted<'a> {
    pub token: u64,
    /// The device it is for: [`Router::request_device`] and [`Router::device`]
    /// resolve it while the device is registered.
    pub device: DeviceRef,
    /// The message id, without the ContentType suffix (see
    /// [`dialect::CONTENT_TYPE_SEPARATOR`]); the reply goes out on the whole level.
    pub message_id: &'a str,
    /// The RRpc ContentType the caller sent (JT/T 808 pass-through type), if any.
    pub content_type: Option<u8>,
    pub payload: &'a [u8],
    /// Last moment (router clock, ms) a reply is accepted.
    pub deadline_ms: u64,
}

/// A registration of a device, as named by an accepted request. A device removed
/// and added again is a new registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceRef {
    slot: u32,
    generation: u32,
}

/// What the application needs of a request's device, read from the router's
/// dispatch record (no further memory than the request itself touched).
#[derive(Clone, Copy, Debug)]
pub struct RequestDevice<'r> {
    pub dialect: Dialect,
    pub identity: Identity<'r>,
    /// What the transport attached at registration.
    pub attachment: Option<&'r Arc<dyn std::any::Any + Send + Sync>>,
}

/// Why a message was not handed to the application.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// Not an RRPC request topic of any dialect.
    NotRrpc,
    /// In an RRPC namespace but broken.
    Malformed(&'static str),
    /// Well-formed, for a device nobody registered.
    UnknownDevice,
    /// This message id was already delivered to the application.
    Duplicate,
    /// This is the device's own reply coming back (custom-topic RRPC).
    OwnReply,
    /// The pending table is full.
    TableFull,
    /// The payload is larger than `max_payload`.
    TooLarge,
}

impl fmt::Display for Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dropped::NotRrpc => f.write_str("not an RRPC request topic"),
            Dropped::Malformed(why) => write!(f, "malformed RRPC topic: {why}"),
            Dropped::UnknownDevice => f.write_str("request for a device that is not registered"),
            Dropped::Duplicate => f.write_str("duplicate delivery of a request already handled"),
            Dropped::OwnReply => f.write_str("own reply echoed back by the broker"),
            Dropped::TableFull => f.write_str("pending-request table is full"),
            Dropped::TooLarge => f.write_str("request payload exceeds the maximum"),
        }
    }
}

/// Why a reply was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplyError<E> {
    /// The token was never issued by this router, or is too old to remember.
    UnknownToken,
    /// The request was answered already.
    AlreadyReplied,
    /// The request's deadline passed; nothing was sent.
    Expired,
    /// The device was removed while the request was pending.
    DeviceRemoved,
    /// The payload is larger than `max_payload`; the token stays valid.
    TooLarge,
    /// The transport refused to send; the token stays valid until its deadline.
    Send(E),
    /// A reply to this token is being sent by another thread right now.
    InProgress,
}

impl<E: fmt::Display> fmt::Display for ReplyError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::UnknownToken => f.write_str("unknown token"),
            ReplyError::AlreadyReplied => f.write_str("request already answered"),
            ReplyError::Expired => f.write_str("request deadline passed; reply not sent"),
            ReplyError::DeviceRemoved => f.write_str("device was removed; reply not sent"),
            ReplyError::TooLarge => f.write_str("reply payload exceeds the maximum"),
            ReplyError::Send(e) => write!(f, "transport could not send the reply: {e}"),
            ReplyError::InProgress => f.write_str("a reply to this request is being sent"),
        }
    }
}

/// A reply error that cannot carry a send error, as any reply error.
fn widen<E>(e: ReplyError<Infallible>) -> ReplyError<E> {
    match e {
        ReplyError::UnknownToken => ReplyError::UnknownToken,
        ReplyError::AlreadyReplied => ReplyError::AlreadyReplied,
        ReplyError::Expired => ReplyError::Expired,
        ReplyError::DeviceRemoved => ReplyError::DeviceRemoved,
        ReplyError::TooLarge => ReplyError::TooLarge,
        ReplyError::InProgress => ReplyError::InProgress,
        ReplyError::Send(never) => match never {},
    }
}

/// Why a device could not be added or removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceError {
    Invalid(IdentityError),
    AlreadyExists,
    /// Another device already receives requests on this custom topic.
    TopicInUse(String),
    NotFound,
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceError::Invalid(e) => write!(f, "invalid identity: {e}"),
            DeviceError::AlreadyExists => f.write_str("device is already registered"),
            DeviceError::TopicInUse(other) => {
                write!(
                    f,
                    "custom topic already receives requests for device {other}"
                )
            }
            DeviceError::NotFound => f.write_str("device is not registered"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Replied,
    Expired,
    Cancelled,
}

/// A device's message id: the key of the duplicate/echo table.
#[derive(Clone, Debug, PartialEq, Eq)]
struct MsgKey {
    slot: u32,
    id: Arc<str>,
}

impl Hash for MsgKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        MsgRef {
            slot: self.slot,
            id: &self.id,
        }
        .hash(h);
    }
}

/// A borrowed [`MsgKey`], for lookups straight from a received topic.
#[derive(Hash)]
struct MsgRef<'a> {
    slot: u32,
    id: &'a str,
}

impl Equivalent<MsgKey> for MsgRef<'_> {
    fn equivalent(&self, k: &MsgKey) -> bool {
        self.slot == k.slot && self.id == &*k.id
    }
}

#[derive(Clone, Copy, Debug)]
struct MsgEntry {
    /// The generation of the slot's device when the id was seen: an entry of a
    /// removed device never matches the device that reuses its slot.
    generation: u32,
    state: MsgState,
}

#[derive(Clone, Copy, Debug)]
enum MsgState {
    Pending,
    Done(Outcome),
}

/// What dispatching a request and building its reply read of a device: one
/// 64-byte record (a cache line) in a vector indexed by slot, with the product key,
/// device name and custom topic inline when they fit together in 47 bytes, as
/// Alibaba's names do (11-byte product keys, device names of at most 32). A
/// request thus reads one line of its device, however many devices there are,
/// and one line of the index ([`SlotIndex`]) to find it; 100,000 devices'
/// records take 6.4 MB, their index 1 MiB. Both reads are started before the
/// topic is parsed ([`Router::guess_hash`]).
#[repr(C, align(64))]
struct Slot {
    generation: u32,
    dialect: Dialect,
    pk_len: u16,
    dn_len: u16,
    custom_len: u16,
    /// `HAS_CUSTOM_TOPIC`, `HAS_ATTACHMENT`.
    flags: u8,
    /// `{product key}/{device name}{custom topic}`.
    text: SlotText,
}

enum SlotText {
    Inline([u8; SLOT_INLINE]),
    Heap(Box<str>),
}

const SLOT_INLINE: usize = 47;
const HAS_CUSTOM_TOPIC: u8 = 1;
/// The device's attachment is in `Router::attachments`.
const HAS_ATTACHMENT: u8 = 2;
const _: () = assert!(std::mem::size_of::<Option<Slot>>() == 64);

impl Slot {
    fn new(dialect: Dialect, id: &Identity<'_>, generation: u32, attached: bool) -> Slot {
        let custom = id.custom_topic.unwrap_or("");
        let joined = [id.product_key, "/", id.device_name, custom].concat();
        let mut flags = 0;
        if id.custom_topic.is_some() {
            flags |= HAS_CUSTOM_TOPIC;
        }
        if attached {
            flags |= HAS_ATTACHMENT;
        }
        let text = if joined.len() <= SLOT_INLINE {
            let mut inline = [0u8; SLOT_INLINE];
            inline[..joined.len()].copy_from_slice(joined.as_bytes());
            SlotText::Inline(inline)
        } else {
            SlotText::Heap(joined.into_boxed_str())
        };
        Slot {
            generation,
            dialect,
            pk_len: to_u16(id.product_key.len()),
            dn_len: to_u16(id.device_name.len()),
            custom_len: to_u16(custom.len()),
            flags,
            text,
        }
    }

    /// `{product key}/{device name}{custom topic}`.
    fn text(&self) -> &str {
        match &self.text {
            SlotText::Heap(h) => h,
            SlotText::Inline(bytes) => {
                let len = self.names_len() + usize::from(self.custom_len);
                // SAFETY: `bytes` starts with a copy of a `str` of `len` bytes (`new`).
                unsafe { std::str::from_utf8_unchecked(&bytes[..len]) }
            }
        }
    }

    fn names_len(&self) -> usize {
        usize::from(self.pk_len) + 1 + usize::from(self.dn_len)
    }

    fn identity(&self) -> Identity<'_> {
        let text = self.text();
        let pk_len = usize::from(self.pk_len);
        let names_len = self.names_len();
        Identity {
            product_key: &text[..pk_len],
            device_name: &text[pk_len + 1..names_len],
            custom_topic: (self.flags & HAS_CUSTOM_TOPIC != 0).then(|| &text[names_len..]),
        }
    }

    /// Whether this is the device `key` names.
    fn is(&self, key: &DeviceKey<'_>) -> bool {
        let custom = self.flags & HAS_CUSTOM_TOPIC != 0;
        match *key {
            DeviceKey::Name(d, names) => {
                self.dialect == d && !custom && &self.text()[..self.names_len()] == names
            }
            DeviceKey::Topic(t) => custom && &self.text()[self.names_len()..] == t,
        }
    }

    /// What the device is looked up by (see [`DeviceKey`]).
    fn key_text(&self) -> &str {
        let text = self.text();
        if self.flags & HAS_CUSTOM_TOPIC != 0 {
            &text[self.names_len()..]
        } else {
            &text[..self.names_len()]
        }
    }
}

enum TokenState {
    Pending(Pending),
    Done(Outcome),
}

struct Pending {
    key: MsgKey,
    generation: u32,
    deadline_ms: u64,
    /// Selects the deadline queue.
    timeout_ms: u64,
    /// Between [`Router::begin_reply`] and [`Router::end_reply`].
    sending: bool,
}

struct DeadlineQueue {
    timeout: u64,
    fifo: VecDeque<(u64, u64)>,
}

struct Finished {
    token: u64,
    key: MsgKey,
    generation: u32,
    at_ms: u64,
}

/// The RRPC core. See the module documentation.
pub struct Router {
    cfg: RouterConfig,
    /// Dispatch records by slot.
    slots: Vec<Option<Slot>>,
    /// The devices by slot, as handed to the application.
    devices: Vec<Option<Arc<Device>>>,
    /// Attachments by slot, of the devices registered with one.
    attachments: HashMap<u32, Arc<dyn std::any::Any + Send + Sync>>,
    free_slots: Vec<u32>,
    generation: u32,
    /// Slots by [`DeviceKey`] (dialect, product key and device name, or custom
    /// topic); entries are compared with the slot's record, so the table itself
    /// holds only hash tags and slot numbers.
    by_key: SlotIndex,
    hasher: DefaultHashBuilder,
    /// Message ids pending or recently finished, per device.
    msgs: HashMap<MsgKey, MsgEntry>,
    /// Tokens pending or recently finished.
    tokens: HashMap<u64, TokenState>,
    pending: usize,
    /// Deadlines of pending requests: one FIFO per distinct timeout, in which
    /// deadlines never decrease. Finished tokens are removed lazily.
    deadlines: Vec<DeadlineQueue>,
    /// Finished requests, oldest first, for forgetting them.
    history: VecDeque<Finished>,
    next_token: u64,
    stats: Stats,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field("devices", &self.device_count())
            .field("pending", &self.pending)
            .field("stats", &self.stats)
            .finish()
    }
}

impl Router {
    pub fn new(cfg: RouterConfig) -> Router {
        // Sized up front for a full table and history, so that no rehash stalls
        // a request once the router runs (memory is touched only as it fills).
        let cap = cfg.history_cap() + cfg.max_pending;
        Router {
            slots: Vec::new(),
            devices: Vec::new(),
            attachments: HashMap::new(),
            free_slots: Vec::new(),
            generation: 0,
            by_key: SlotIndex::new(),
            hasher: DefaultHashBuilder::default(),
            msgs: HashMap::with_capacity(cap),
            tokens: HashMap::with_capacity(cap),
            pending: 0,
            deadlines: Vec::new(),
            history: VecDeque::with_capacity(cfg.history_cap()),
            next_token: first_token(),
            stats: Stats::default(),
            cfg,
        }
    }

    pub fn config(&self) -> &RouterConfig {
        &self.cfg
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Requests waiting for a reply.
    pub fn pending_len(&self) -> usize {
        self.pending
    }

    pub fn device_count(&self) -> usize {
        self.slots.len() - self.free_slots.len()
    }

    /// Every registered device, in registration-slot order.
    pub fn devices(&self) -> impl Iterator<Item = &Arc<Device>> {
        self.devices.iter().flatten()
    }

    /// The device of an accepted request, while it is registered.
    pub fn device(&self, r: DeviceRef) -> Option<&Arc<Device>> {
        self.live_slot(r)?;
        self.devices[r.slot as usize].as_ref()
    }

    /// Dialect, identity and attachment of an accepted request's device, while it
    /// is registered. Cheaper than [`Router::device`]: it reads the record the
    /// dispatch of the request has just read.
    pub fn request_device(&self, r: DeviceRef) -> Option<RequestDevice<'_>> {
        let s = self.live_slot(r)?;
        Some(RequestDevice {
            dialect: s.dialect,
            identity: s.identity(),
            attachment: if s.flags & HAS_ATTACHMENT != 0 {
                self.attachments.get(&r.slot)
            } else {
                None
            },
        })
    }

    fn live_slot(&self, r: DeviceRef) -> Option<&Slot> {
        self.slots
            .get(r.slot as usize)?
            .as_ref()
            .filter(|s| s.generation == r.generation)
    }

    /// Registers a device. Its filter is [`Device::filter`]; subscribing it is
    /// the transport's job.
    pub fn add_device(
        &mut self,
        dialect: Dialect,
        id: &Identity<'_>,
    ) -> Result<Arc<Device>, DeviceError> {
        self.add_device_with(dialect, id, Attachment::default())
    }

    /// [`Router::add_device`] with data the transport wants back with each request.
    pub fn add_device_with(
        &mut self,
        dialect: Dialect,
        id: &Identity<'_>,
        attachment: Attachment,
    ) -> Result<Arc<Device>, DeviceError> {
        dialect::validate_identity(dialect, id).map_err(DeviceError::Invalid)?;
        let names = format!("{}/{}", id.product_key, id.device_name);
        let key = DeviceKey::of(dialect, id, &names);
        if let Some(i) = self.lookup(&key) {
            let other = self.slots[i as usize]
                .as_ref()
                .expect("indexed slot is live")
                .identity();
            if other.product_key != id.product_key || other.device_name != id.device_name {
                return Err(DeviceError::TopicInUse(format!(
                    "{}/{}",
                    other.product_key, other.device_name
                )));
            }
            return Err(DeviceError::AlreadyExists);
        }
        let device = Arc::new(Device::new(dialect, id));
        self.generation = self.generation.wrapping_add(1);
        let slot = Slot::new(dialect, id, self.generation, attachment.0.is_some());
        let index = match self.free_slots.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(slot);
                self.devices[i as usize] = Some(device.clone());
                i
            }
            None => {
                self.slots.push(Some(slot));
                self.devices.push(Some(device.clone()));
                (self.slots.len() - 1) as u32
            }
        };
        if let Some(a) = attachment.0 {
            self.attachments.insert(index, a);
        }
        let hash = self.hasher.hash_one(key.text().as_bytes());
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.by_key.insert(hash, index, |i| {
            let slot = slots[i as usize].as_ref();
            slot.map_or(0, |s| hasher.hash_one(s.key_text().as_bytes()))
        });
        Ok(device)
    }

    /// Removes a device. Its pending requests are cancelled: replying to them
    /// fails with [`ReplyError::DeviceRemoved`].
    pub fn remove_device(
        &mut self,
        dialect: Dialect,
        id: &Identity<'_>,
        now_ms: u64,
    ) -> Result<Arc<Device>, DeviceError> {
        let names = format!("{}/{}", id.product_key, id.device_name);
        let key = DeviceKey::of(dialect, id, &names);
        let hash = self.hasher.hash_one(key.text().as_bytes());
        let slots = &self.slots;
        let Some(index) = self.by_key.remove(hash, |i| slot_is(slots, i, &key)) else {
            return Err(DeviceError::NotFound);
        };
        let cancelled: Vec<u64> = self
            .tokens
            .iter()
            .filter_map(|(&t, s)| match s {
                TokenState::Pending(p) if p.key.slot == index => Some(t),
                _ => None,
            })
            .collect();
        for token in cancelled {
            self.finish(token, Outcome::Cancelled, now_ms);
        }
        self.slots[index as usize] = None;
        self.attachments.remove(&index);
        let device = self.devices[index as usize]
            .take()
            .expect("indexed slot is live");
        self.free_slots.push(index);
        Ok(device)
    }

    /// The slot of the device `key` names.
    fn lookup(&self, key: &DeviceKey<'_>) -> Option<u32> {
        let hash = self.hasher.hash_one(key.text().as_bytes());
        self.by_key.find(hash, |i| slot_is(&self.slots, i, key))
    }

    /// Takes in one received MQTT message. A request for a registered device is
    /// accepted (and must be answered with [`Router::reply`] before its deadline);
    /// anything else is dropped, with the reason, and counted.
    pub fn handle_message<'a>(
        &mut self,
        topic: &'a str,
        payload: &'a [u8],
        now_ms: u64,
    ) -> Result<Accepted<'a>, Dropped> {
        let guess = self.guess_hash(topic.as_bytes());
        let guess = guess.and_then(|h| self.guess_slot(h));
        self.handle(topic, payload, now_ms, guess)
    }

    /// With many devices, the index entry and the record of a request's device
    /// are the reads most likely to miss the caches, and each needs the one
    /// before. So they are started early, from a guess at the device taken from
    /// the topic's raw bytes, and the topic's checks and parsing run while they
    /// are on their way: [`Router::guess_hash`] hashes the guessed names and
    /// starts loading the index entry, [`Router::guess_slot`] reads it and
    /// starts loading the record, and [`Router::accept`] confirms the guess.
    #[inline]
    fn guess_hash(&self, topic: &[u8]) -> Option<u64> {
        let names = Dialect::names_guess(topic)?;
        let hash = self.hasher.hash_one(names);
        self.by_key.prefetch(hash);
        Some(hash)
    }

    /// See [`Router::guess_hash`].
    #[inline]
    fn guess_slot(&self, hash: u64) -> Option<u32> {
        let slot = self.by_key.candidate(hash)?;
        prefetch(self.slots.as_ptr().wrapping_add(slot as usize));
        Some(slot)
    }

    fn handle<'a>(
        &mut self,
        topic: &'a str,
        payload: &'a [u8],
        now_ms: u64,
        guess: Option<u32>,
    ) -> Result<Accepted<'a>, Dropped> {
        self.stats.messages += 1;
        let parsed = match dialect::parse_request_unchecked(topic) {
            Ok(p) => p,
            Err(TopicError::NoMatch) => {
                self.stats.not_rrpc += 1;
                return Err(Dropped::NotRrpc);
            }
            Err(TopicError::Malformed(why)) => {
                self.stats.malformed += 1;
                return Err(Dropped::Malformed(why));
            }
        };
        self.accept(topic, parsed, payload, now_ms, guess)
    }

    /// As [`Router::handle_message`], for a topic given as bytes: one that is not
    /// UTF-8 is dropped as malformed.
    pub fn handle_message_bytes<'a>(
        &mut self,
        topic: &'a [u8],
        payload: &'a [u8],
        now_ms: u64,
    ) -> Result<Accepted<'a>, Dropped> {
        let guess = self.guess_hash(topic);
        match std::str::from_utf8(topic) {
            Ok(t) => {
                let guess = guess.and_then(|h| self.guess_slot(h));
                self.handle(t, payload, now_ms, guess)
            }
            Err(_) => {
                self.stats.messages += 1;
                self.stats.malformed += 1;
                Err(Dropped::Malformed("the topic is not valid UTF-8"))
            }
        }
    }

    fn accept<'a>(
        &mut self,
        topic: &'a str,
        parsed: ParsedTopic<'a>,
        payload: &'a [u8],
        now_ms: u64,
        guess: Option<u32>,
    ) -> Result<Accepted<'a>, Dropped> {
        let names;
        let key = match (parsed.custom_topic, parsed.product_key, parsed.device_name) {
            (Some(t), _, _) => Some(DeviceKey::Topic(t)),
            (None, Some(pk), Some(dn)) => {
                names = joined_names(topic, pk, dn);
                Some(DeviceKey::Name(parsed.dialect, &names))
            }
            _ => None,
        };
        if let (Some(k), Some(g)) = (&key, guess) {
            if let Some(a) = self.accept_guessed(k, g, &parsed, payload, now_ms) {
                return Ok(a);
            }
        }
        let index = key.and_then(|k| match guess {
            Some(g) if slot_is(&self.slots, g, &k) => Some(g),
            _ => self.lookup(&k),
        });
        let Some(index) = index else {
            // Tell a broken topic from a stranger's request.
            if let Err(TopicError::Malformed(why)) = parsed.validate() {
                self.stats.malformed += 1;
                return Err(Dropped::Malformed(why));
            }
            self.stats.unknown_device += 1;
            return Err(Dropped::UnknownDevice);
        };
        // The rest of the topic equals a validated registration; the id is new.
        if let Err(TopicError::Malformed(why)) = parsed.validate_message_id() {
            self.stats.malformed += 1;
            return Err(Dropped::Malformed(why));
        }
        self.trim_history(now_ms);
        let slot = self.slots[index as usize]
            .as_ref()
            .expect("indexed slot is live");
        if slot.dialect != parsed.dialect {
            self.stats.unknown_device += 1;
            return Err(Dropped::UnknownDevice);
        }
        let (generation, dialect) = (slot.generation, slot.dialect);
        let message_id = parsed.message_id;
        let seen = self.msgs.get(&MsgRef {
            slot: index,
            id: message_id,
        });
        match seen {
            Some(e) if e.generation != generation => {} // a removed device's id
            Some(MsgEntry {
                state: MsgState::Done(Outcome::Replied),
                ..
            }) if parsed.dialect.needs_custom_topic() => {
                self.stats.own_replies += 1;
                return Err(Dropped::OwnReply);
            }
            Some(_) => {
                self.stats.duplicates += 1;
                return Err(Dropped::Duplicate);
            }
            None => {}
        }
        if payload.len() > self.cfg.max_payload {
            self.stats.too_large += 1;
            return Err(Dropped::TooLarge);
        }
        if self.pending >= self.cfg.max_pending {
            self.expire(now_ms);
            if self.pending >= self.cfg.max_pending {
                self.stats.table_full += 1;
                return Err(Dropped::TableFull);
            }
        }

        let timeout = match self.cfg.request_timeout_ms {
            0 => dialect.default_timeout_ms(),
            t => t,
        };
        let deadline_ms = now_ms.saturating_add(u64::from(timeout));
        let token = self.next_token;
        let key = MsgKey {
            slot: index,
            id: Arc::from(message_id),
        };
        self.msgs.insert(
            key.clone(),
            MsgEntry {
                generation,
                state: MsgState::Pending,
            },
        );
        self.tokens.insert(
            token,
            TokenState::Pending(Pending {
                key,
                generation,
                deadline_ms,
                timeout_ms: u64::from(timeout),
                sending: false,
            }),
        );
        Ok(self.admitted(
            token,
            index,
            generation,
            timeout,
            deadline_ms,
            message_id,
            payload,
        ))
    }

    /// The rest of accepting request `token` once its table entries are in place.
    #[allow(clippy::too_many_arguments)] // all plain values of one request
    fn admitted<'a>(
        &mut self,
        token: u64,
        slot: u32,
        generation: u32,
        timeout: u32,
        deadline_ms: u64,
        message_id: &'a str,
        payload: &'a [u8],
    ) -> Accepted<'a> {
        self.next_token = token.wrapping_add(1).max(1);
        self.pending += 1;
        self.queue_deadline(u64::from(timeout), deadline_ms, token);
        self.stats.requests += 1;
        let (message_id, content_type) = dialect::split_content_type(message_id);
        Accepted {
            token,
            device: DeviceRef { slot, generation },
            message_id,
            content_type,
            payload,
            deadline_ms,
        }
    }

    /// [`Router::accept`] for a request whose device was guessed as slot `g`, in
    /// an order that reads the slot's record last: everything that does not need
    /// it (checks, the message id's copy, finding where the request's table
    /// entries go) runs while the record's line, requested by
    /// [`Router::guess_slot`], is on its way. `None`, with nothing changed, when
    /// the guess is wrong or the request is not plainly new (the full path then
    /// decides).
    fn accept_guessed<'a>(
        &mut self,
        key: &DeviceKey<'_>,
        g: u32,
        parsed: &ParsedTopic<'a>,
        payload: &'a [u8],
        now_ms: u64,
    ) -> Option<Accepted<'a>> {
        if parsed.validate_message_id().is_err()
            || payload.len() > self.cfg.max_payload
            || self.pending >= self.cfg.max_pending
        {
            return None;
        }
        self.trim_history(now_ms);
        let timeout = match self.cfg.request_timeout_ms {
            0 => parsed.dialect.default_timeout_ms(),
            t => t,
        };
        let deadline_ms = now_ms.saturating_add(u64::from(timeout));
        let token = self.next_token;
        let id: Arc<str> = Arc::from(parsed.message_id);
        let hashbrown::hash_map::Entry::Vacant(msg) = self.msgs.entry(MsgKey {
            slot: g,
            id: id.clone(),
        }) else {
            return None;
        };
        let hashbrown::hash_map::Entry::Vacant(tok) = self.tokens.entry(token) else {
            return None;
        };
        // Now the record.
        let slot = self.slots.get(g as usize)?.as_ref()?;
        if !slot.is(key) || slot.dialect != parsed.dialect {
            return None;
        }
        let generation = slot.generation;
        msg.insert(MsgEntry {
            generation,
            state: MsgState::Pending,
        });
        tok.insert(TokenState::Pending(Pending {
            key: MsgKey { slot: g, id },
            generation,
            deadline_ms,
            timeout_ms: u64::from(timeout),
            sending: false,
        }));
        Some(self.admitted(
            token,
            g,
            generation,
            timeout,
            deadline_ms,
            parsed.message_id,
            payload,
        ))
    }

    /// Answers the request `token` with `payload`: checks the token, the deadline
    /// and the size, builds the response topic and hands topic and payload to
    /// `send`. Only when `send` succeeds is the request finished; when it fails the
    /// token stays valid until its deadline, so the reply can be retried.
    pub fn reply<E>(
        &mut self,
        token: u64,
        payload: &[u8],
        now_ms: u64,
        send: impl FnOnce(&str, &[u8]) -> Result<(), E>,
    ) -> Result<(), ReplyError<E>> {
        let topic = self
            .check_reply(token, payload.len(), now_ms)
            .map_err(widen)?;
        let sent = send(&topic, payload);
        self.settle(token, sent.is_ok(), true, now_ms);
        sent.map_err(ReplyError::Send)
    }

    /// First half of a reply sent without holding the router: the checks of
    /// [`Router::reply`], then the request is marked as being answered (another
    /// reply now fails with [`ReplyError::InProgress`]) and the response topic is
    /// returned. Finish with [`Router::end_reply`].
    pub fn begin_reply(
        &mut self,
        token: u64,
        payload_len: usize,
        now_ms: u64,
    ) -> Result<String, ReplyError<Infallible>> {
        let topic = self.check_reply(token, payload_len, now_ms)?;
        if let Some(TokenState::Pending(p)) = self.tokens.get_mut(&token) {
            p.sending = true;
        }
        Ok(topic)
    }

    /// Second half: `sent` finishes the request as answered. A reply that could
    /// not be sent leaves the request pending, as [`Router::reply`] does: another
    /// reply may be tried until the deadline. Either way the reply is counted
    /// (`replied` or `send_failures`), also when the request ended meanwhile
    /// (expired, device removed).
    pub fn end_reply(&mut self, token: u64, sent: bool, now_ms: u64) {
        // The request may have ended while its reply was being sent (device
        // removed, deadline passed); a reply that went out is counted all the same.
        let still_pending = match self.tokens.get_mut(&token) {
            Some(TokenState::Pending(p)) if p.sending => {
                p.sending = false;
                true
            }
            _ => false,
        };
        self.settle(token, sent, still_pending, now_ms);
    }

    /// The end of every reply: one that was sent finishes its request (when it
    /// is `still_pending`); one that was not leaves the request pending.
    fn settle(&mut self, token: u64, sent: bool, still_pending: bool, now_ms: u64) {
        if !sent {
            self.stats.send_failures += 1;
            return;
        }
        if still_pending {
            self.finish(token, Outcome::Replied, now_ms);
        }
        self.stats.replied += 1;
    }

    /// Everything a reply must pass before it is sent; returns the response topic.
    fn check_reply(
        &mut self,
        token: u64,
        payload_len: usize,
        now_ms: u64,
    ) -> Result<String, ReplyError<Infallible>> {
        let p = match self.tokens.get(&token) {
            Some(TokenState::Pending(p)) => p,
            Some(TokenState::Done(outcome)) => {
                let (err, late) = match outcome {
                    Outcome::Replied => (ReplyError::AlreadyReplied, false),
                    Outcome::Expired => (ReplyError::Expired, true),
                    Outcome::Cancelled => (ReplyError::DeviceRemoved, false),
                };
                if late {
                    self.stats.late_replies += 1;
                } else {
                    self.stats.bad_tokens += 1;
                }
                return Err(err);
            }
            None => {
                self.stats.bad_tokens += 1;
                return Err(ReplyError::UnknownToken);
            }
        };
        if p.sending {
            return Err(ReplyError::InProgress);
        }
        if now_ms > p.deadline_ms {
            self.stats.late_replies += 1;
            self.expire(now_ms);
            return Err(ReplyError::Expired);
        }
        if payload_len > self.cfg.max_payload {
            return Err(ReplyError::TooLarge);
        }
        let slot = self.slots[p.key.slot as usize]
            .as_ref()
            .expect("pending slot is live");
        let names = &slot.text()[..slot.names_len()];
        Ok(
            match slot.dialect.response_topic_by_names(names, &p.key.id) {
                Some(t) => t,
                None => slot.dialect.response_topic(&slot.identity(), &p.key.id),
            },
        )
    }

    /// The earliest deadline among pending requests (possibly of one just
    /// finished: waking early is harmless).
    pub fn next_deadline(&self) -> Option<u64> {
        self.deadlines
            .iter()
            .filter_map(|q| q.fifo.front())
            .map(|&(d, _)| d)
            .min()
    }

    /// Removes every request whose deadline is before `now_ms`; returns how many.
    pub fn expire(&mut self, now_ms: u64) -> usize {
        let mut n = 0;
        for qi in 0..self.deadlines.len() {
            while let Some(&(deadline, token)) = self.deadlines[qi].fifo.front() {
                if deadline >= now_ms {
                    break;
                }
                self.deadlines[qi].fifo.pop_front();
                if self.is_pending(token) {
                    self.finish(token, Outcome::Expired, now_ms);
                    self.stats.expired += 1;
                    n += 1;
                }
            }
        }
        self.trim_history(now_ms);
        n
    }

    fn is_pending(&self, token: u64) -> bool {
        matches!(self.tokens.get(&token), Some(TokenState::Pending(_)))
    }

    fn queue_deadline(&mut self, timeout: u64, deadline_ms: u64, token: u64) {
        let qi = match self.deadlines.iter().position(|q| q.timeout == timeout) {
            Some(i) => i,
            None => {
                self.deadlines.push(DeadlineQueue {
                    timeout,
                    fifo: VecDeque::new(),
                });
                self.deadlines.len() - 1
            }
        };
        self.deadlines[qi].fifo.push_back((deadline_ms, token));
        // Tokens finished out of order stay queued until they reach the front;
        // compact now and then so that the queue stays near the pending count.
        if self.deadlines[qi].fifo.len() > 2 * self.cfg.max_pending + 16 {
            let fifo = std::mem::take(&mut self.deadlines[qi].fifo);
            let kept: VecDeque<(u64, u64)> = fifo
                .into_iter()
                .filter(|&(_, t)| self.is_pending(t))
                .collect();
            self.deadlines[qi].fifo = kept;
        }
    }

    /// Drops finished tokens from the front of the deadline queue of `timeout`.
    fn pop_finished_deadlines(&mut self, timeout: u64) {
        let Some(qi) = self.deadlines.iter().position(|q| q.timeout == timeout) else {
            return;
        };
        while let Some(&(_, t)) = self.deadlines[qi].fifo.front() {
            if self.is_pending(t) {
                break;
            }
            self.deadlines[qi].fifo.pop_front();
        }
    }

    fn finish(&mut self, token: u64, outcome: Outcome, now_ms: u64) {
        let state = self
            .tokens
            .get_mut(&token)
            .expect("finishing a known token");
        let TokenState::Pending(p) = std::mem::replace(state, TokenState::Done(outcome)) else {
            unreachable!("finishing a pending token");
        };
        self.pending -= 1;
        self.pop_finished_deadlines(p.timeout_ms);
        let r = MsgRef {
            slot: p.key.slot,
            id: &p.key.id,
        };
        if let Some(e) = self.msgs.get_mut(&r) {
            if e.generation == p.generation {
                e.state = MsgState::Done(outcome);
            }
        }
        self.history.push_back(Finished {
            token,
            key: p.key,
            generation: p.generation,
            at_ms: now_ms,
        });
        let cap = self.cfg.history_cap();
        while self.history.len() > cap {
            self.forget_oldest();
        }
    }

    fn trim_history(&mut self, now_ms: u64) {
        while let Some(f) = self.history.front() {
            if now_ms.saturating_sub(f.at_ms) <= self.cfg.history_ms {
                break;
            }
            self.forget_oldest();
        }
    }

    fn forget_oldest(&mut self) {
        let Some(f) = self.history.pop_front() else {
            return;
        };
        self.tokens.remove(&f.token);
        let r = MsgRef {
            slot: f.key.slot,
            id: &f.key.id,
        };
        if let Some(e) = self.msgs.get(&r) {
            if e.generation == f.generation && matches!(e.state, MsgState::Done(_)) {
                self.msgs.remove(&r);
            }
        }
    }
}

/// How a device is found from a received topic. Only the text is hashed.
#[derive(Clone, Copy)]
enum DeviceKey<'a> {
    /// System and Tencent topics: dialect and `{product key}/{device name}`
    /// (unambiguous: neither part may contain `/`).
    Name(Dialect, &'a str),
    /// Alibaba custom topics: the custom topic.
    Topic(&'a str),
}

impl<'a> DeviceKey<'a> {
    /// The key of a registration; `names` is `{product key}/{device name}`.
    fn of(dialect: Dialect, id: &Identity<'a>, names: &'a str) -> DeviceKey<'a> {
        match id.custom_topic {
            Some(t) if dialect.needs_custom_topic() => DeviceKey::Topic(t),
            _ => DeviceKey::Name(dialect, names),
        }
    }

    fn text(&self) -> &'a str {
        match *self {
            DeviceKey::Name(_, t) | DeviceKey::Topic(t) => t,
        }
    }
}

/// `{pk}/{dn}` of a request topic: borrowed from the topic when the two levels are
/// adjacent there (every system and Tencent topic), else built.
fn joined_names<'t>(topic: &'t str, pk: &'t str, dn: &'t str) -> Cow<'t, str> {
    let base = topic.as_ptr() as usize;
    let start = (pk.as_ptr() as usize).wrapping_sub(base);
    let end = (dn.as_ptr() as usize)
        .wrapping_sub(base)
        .wrapping_add(dn.len());
    match topic.get(start..end) {
        Some(s) if s.len() == pk.len() + 1 + dn.len() && s.as_bytes()[pk.len()] == b'/' => {
            Cow::Borrowed(s)
        }
        _ => Cow::Owned(format!("{pk}/{dn}")),
    }
}

/// Asks the CPU to start loading `p`'s cache line; no effect on other targets.
#[inline(always)]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing architecturally; any address is allowed.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Whether slot `i` holds the device `key` names (a free slot holds none).
fn slot_is(slots: &[Option<Slot>], i: u32, key: &DeviceKey<'_>) -> bool {
    slots
        .get(i as usize)
        .and_then(Option::as_ref)
        .is_some_and(|s| s.is(key))
}

/// Tokens start at a per-router random point, so that a token handed to the
/// wrong client or router is refused rather than answering a stranger's request.
fn first_token() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u64(0x5252_5043);
    (h.finish() >> 2).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PK: &str = "a1GFjLP3xxC";

    fn dev(dn: &str) -> Identity<'_> {
        Identity {
            product_key: PK,
            device_name: dn,
            custom_topic: None,
        }
    }

    fn router() -> Router {
        let mut r = Router::new(RouterConfig::default());
        r.add_device(Dialect::AlibabaSystem, &dev("dev1")).unwrap();
        r
    }

    fn send_ok(
        sent: &mut Vec<(String, Vec<u8>)>,
    ) -> impl FnOnce(&str, &[u8]) -> Result<(), ()> + '_ {
        move |t, p| {
            sent.push((t.to_string(), p.to_vec()));
            Ok(())
        }
    }

    #[test]
    fn request_reply_round_trip() {
        let mut r = router();
        let a = r
            .handle_message("/sys/a1GFjLP3xxC/dev1/rrpc/request/42", b"ping", 1000)
            .unwrap();
        assert_eq!(a.message_id, "42");
        assert_eq!(a.payload, b"ping");
        assert_eq!(
            r.request_device(a.device).unwrap().identity.device_name,
            "dev1"
        );
        assert_eq!(a.deadline_ms, 1000 + 8000);
        let token = a.token;
        assert_ne!(token, 0);
        let mut sent = Vec::new();
        r.reply(token, b"pong", 1001, send_ok(&mut sent)).unwrap();
        assert_eq!(
            sent,
            vec![(
                "/sys/a1GFjLP3xxC/dev1/rrpc/response/42".to_string(),
                b"pong".to_vec()
            )]
        );
        assert_eq!(r.pending_len(), 0);
        let s = r.stats();
        assert_eq!((s.messages, s.requests, s.replied), (1, 1, 1));
    }

    #[test]
    fn exactly_one_reply_per_token() {
        let mut r = router();
        let t = r
            .handle_message("/sys/a1GFjLP3xxC/dev1/rrpc/request/1", b"", 0)
            .unwrap()
            .token;
        let mut sent = Vec::new();
        r.reply(t, b"a", 1, send_ok(&mut sent)).unwrap();
        assert_eq!(
            r.reply(t, b"b", 2, send_ok(&mut sent)),
            Err(ReplyError::AlreadyReplied)
        );
        assert_eq!(
            r.reply(t ^ 0xdead, b"c", 2, send_ok(&mut sent)),
            Err(ReplyError::UnknownToken)
        );
        assert_eq!(sent.len(), 1);
        assert_eq!(r.stats().bad_tokens, 2);
    }

    #[test]
    fn duplicate_delivery_is_handed_over_once() {
        let mut r = router();
        let topic = "/sys/a1GFjLP3xxC/dev1/rrpc/request/7";
        let t = r.handle_message(topic, b"x", 0).unwrap().token;
        assert_eq!(
            r.handle_message(topic, b"x", 5).unwrap_err(),
            Dropped::Duplicate
        );
        r.reply(t, b"y", 6, |_, _| Ok::<(), ()>(())).unwrap();
        // Still a duplicate after the reply, within the history window.
        assert_eq!(
            r.handle_message(topic, b"x", 7).unwrap_err(),
            Dropped::Duplicate
        );
        assert_eq!(r.stats().duplicates, 2);
        // The same id for another device is a different request.
        r.add_device(Dialect::AlibabaSystem, &dev("dev2")).unwrap();
        assert!(r
            .handle_message("/sys/a1GFjLP3xxC/dev2/rrpc/request/7", b"x", 8)
            .is_ok());
    }

    #[test]
    fn custom_topic_reply_echo_is_not_a_new_request() {
        let mut r = Router::new(RouterConfig::default());
        let id = Identity {
            product_key: PK,
            device_name: "dev1",
            custom_topic: Some("/a1GFjLP3xxC/dev1/user/update"),
        };
        let d = r.add_device(Dialect::AlibabaCustom, &id).unwrap();
        assert_eq!(d.filter(), "/ext/rrpc/+/a1GFjLP3xxC/dev1/user/update");
        let topic = "/ext/rrpc/99/a1GFjLP3xxC/dev1/user/update";
        let a = r.handle_message(topic, b"req", 0).unwrap();
        assert_eq!(r.request_device(a.device).unwrap().identity.product_key, PK);
        let t = a.token;
        let mut sent = Vec::new();
        r.reply(t, b"resp", 1, send_ok(&mut sent)).unwrap();
        assert_eq!(
            sent[0].0, topic,
            "custom replies go out on the request topic"
        );
        // The broker delivers our reply back to our own subscription.
        assert_eq!(
            r.handle_message(topic, b"resp", 2).unwrap_err(),
            Dropped::OwnReply
        );
        assert_eq!(
            r.handle_message(topic, b"resp", 3).unwrap_err(),
            Dropped::OwnReply
        );
        assert_eq!(r.stats().own_replies, 2);
        assert_eq!(r.stats().requests, 1);
    }

    #[test]
    fn late_reply_is_refused_and_entry_expires() {
        let mut r = router();
        let t = r
            .handle_message("/sys/a1GFjLP3xxC/dev1/rrpc/request/1", b"", 0)
            .unwrap()
            .token;
        let mut sent = Vec::new();
        assert_eq!(
            r.reply(t, b"late", 8001, send_ok(&mut sent)),
            Err(ReplyError::Expired)
        );
        assert!(sent.is_empty());
        assert_eq!(r.pending_len(), 0);
        assert_eq!(
            r.reply(t, b"later", 9000, send_ok(&mut sent)),
            Err(ReplyError::Expired)
        );
        let s = r.stats();
        assert_eq!((s.expired, s.late_replies), (1, 2));
    }

    #[test]
    fn unanswered_requests_expire_at_their_deadline() {
        let mut r = Router::new(RouterConfig {
            request_timeout_ms: 100,
            ..RouterConfig::default()
        });
        r.add_device(Dialect::Tencent, &dev("dev1")).unwrap();
        r.handle_message("$rrpc/rxd/a1GFjLP3xxC/dev1/1", b"", 0)
            .unwrap();
        r.handle_message("$rrpc/rxd/a1GFjLP3xxC/dev1/2", b"", 50)
            .unwrap();
        assert_eq!(r.next_deadline(), Some(100));
        assert_eq!(r.expire(100), 0, "the deadline itself is still in time");
        assert_eq!(r.expire(101), 1);
        assert_eq!(r.expire(151), 1);
        assert_eq!(r.pending_len(), 0);
        assert_eq!(r.next_deadline(), None);
    }

    #[test]
    fn tencent_default_deadline_is_four_seconds() {
        let mut r = Router::new(RouterConfig::default());
        r.add_device(Dialect::Tencent, &dev("test01")).unwrap();
        let a = r
            .handle_message("$rrpc/rxd/a1GFjLP3xxC/test01/41440", b"", 10)
            .unwrap();
        assert_eq!(a.deadline_ms, 4010);
    }

    #[test]
    fn table_is_bounded_and_frees_expired_entries() {
        let mut r = Router::new(RouterConfig {
            max_pending: 2,
            request_timeout_ms: 10,
            ..RouterConfig::default()
        });
        r.add_device(Dialect::AlibabaSystem, &dev("dev1")).unwrap();
        let topic = |i: u32| format!("/sys/a1GFjLP3xxC/dev1/rrpc/request/{i}");
        r.handle_message(&topic(1), b"", 0).unwrap();
        r.handle_message(&topic(2), b"", 0).unwrap();
        assert_eq!(
            r.handle_message(&topic(3), b"", 5).unwrap_err(),
            Dropped::TableFull
        );
        assert_eq!(r.stats().table_full, 1);
        // Once the first two are past their deadline, room is made on demand.
        assert!(r.handle_message(&topic(4), b"", 11).is_ok());
        assert_eq!(r.pending_len(), 1);
    }

    #[test]
    fn history_is_bounded() {
        let mut r = Router::new(RouterConfig {
            max_history: 8,
            ..RouterConfig::default()
        });
        r.add_device(Dialect::AlibabaSystem, &dev("dev1")).unwrap();
        let mut first = 0;
        for i in 0..100u32 {
            let t = r
                .handle_message(&format!("/sys/a1GFjLP3xxC/dev1/rrpc/request/{i}"), b"", 0)
                .unwrap()
                .token;
            if i == 0 {
                first = t;
            }
            r.reply(t, b"", 0, |_, _| Ok::<(), ()>(())).unwrap();
        }
        assert!(r.history.len() <= 8);
        assert!(r.tokens.len() <= 8);
        assert!(r.msgs.len() <= 8);
        // Forgotten tokens read as unknown.
        assert_eq!(
            r.reply(first, b"", 0, |_, _| Ok::<(), ()>(())),
            Err(ReplyError::UnknownToken)
        );
    }

    #[test]
    fn history_forgets_by_age() {
        let mut r = router();
        let topic = "/sys/a1GFjLP3xxC/dev1/rrpc/request/5";
        let t = r.handle_message(topic, b"", 0).unwrap().token;
        r.reply(t, b"", 1, |_, _| Ok::<(), ()>(())).unwrap();
        assert_eq!(
            r.handle_message(topic, b"", 1000).unwrap_err(),
            Dropped::Duplicate
        );
        // Far past the window, the id may be reused by the cloud.
        assert!(r
            .handle_message(topic, b"", 1 + DEFAULT_HISTORY_MS + 1)
            .is_ok());
    }

    #[test]
    fn failed_send_keeps_the_token() {
        let mut r = router();
        let t = r
            .handle_message("/sys/a1GFjLP3xxC/dev1/rrpc/request/1", b"", 0)
            .unwrap()
            .token;
        assert_eq!(
            r.reply(t, b"x", 1, |_, _| Err("link down")),
            Err(ReplyError::Send("link down"))
        );
        assert_eq!(r.pending_len(), 1);
        assert_eq!(r.stats().send_failures, 1);
        r.reply(t, b"x", 2, |_, _| Ok::<(), &str>(())).unwrap();
    }

    #[test]
    fn payload_limits() {
        let mut r = Router::new(RouterConfig {
            max_payload: 4,
            ..RouterConfig::default()
        });
        r.add_device(Dialect::AlibabaSystem, &dev("dev1")).unwrap();
        assert_eq!(
            r.handle_message("/sys/a1GFjLP3xxC/dev1/rrpc/request/1", b"12345", 0)
                .unwrap_err(),
            Dropped::TooLarge
        );
        let t = r
            .handle_message("/sys/a1GFjLP3xxC/dev1/rrpc/request/2", b"1234", 0)
            .unwrap()
            .token;
        assert_eq!(
            r.reply(t, b"12345", 1, |_, _| Ok::<(), ()>(())),
            Err(ReplyError::TooLarge)
        );
        r.reply(t, b"1234", 1, |_, _| Ok::<(), ()>(())).unwrap();
    }

    #[test]
    fn unknown_devices_malformed_and_foreign_topics_are_counted() {
        let mut r = router();
        assert_eq!(
            r.handle_message("/sys/a1GFjLP3xxC/other/rrpc/request/1", b"", 0)
                .unwrap_err(),
            Dropped::UnknownDevice
        );
        assert!(matches!(
            r.handle_message("/sys/a1GFjLP3xxC/dev1/rrpc/request/", b"", 0)
                .unwrap_err(),
            Dropped::Malformed(_)
        ));
        assert!(matches!(
            r.handle_message_bytes(b"/sys/\xff/dev1/rrpc/request/1", b"", 0)
                .unwrap_err(),
            Dropped::Malformed(_)
        ));
        assert_eq!(
            r.handle_message("/sys/a1GFjLP3xxC/dev1/thing/event", b"", 0)
                .unwrap_err(),
            Dropped::NotRrpc
        );
        let s = r.stats();
        assert_eq!(
            (s.unknown_device, s.malformed, s.not_rrpc, s.messages),
            (1, 2, 1, 4)
        );
    }

    #[test]
    fn devices_are_added_once_and_removal_cancels_pending() {
        let mut r = router();
        assert_eq!(
            r.add_device(Dialect::AlibabaSystem, &dev("dev1"))
                .unwrap_err(),
            DeviceError::AlreadyExists
        );
        // Same identity under another dialect is another device.
        r.add_device(Dialect::Tencent, &dev("dev1")).unwrap();
        assert!(matches!(
            r.add_device(Dialect::AlibabaSystem, &dev("a+b"))
                .unwrap_err(),
            DeviceError::Invalid(_)
        ));
        let t = r
            .handle_message("/sys/a1GFjLP3xxC/dev1/rrpc/request/1", b"", 0)
            .unwrap()
            .token;
        r.remove_device(Dialect::AlibabaSystem, &dev("dev1"), 1)
            .unwrap();
        assert_eq!(
            r.reply(t, b"", 2, |_, _| Ok::<(), ()>(())),
            Err(ReplyError::DeviceRemoved)
        );
        assert_eq!(r.pending_len(), 0);
        assert_eq!(
            r.remove_device(Dialect::AlibabaSystem, &dev("dev1"), 3)
                .unwrap_err(),
            DeviceError::NotFound
        );
        assert_eq!(
            r.handle_message("/sys/a1GFjLP3xxC/dev1/rrpc/request/2", b"", 4)
                .unwrap_err(),
            Dropped::UnknownDevice
        );
        // Re-adding reuses the slot with a fresh state.
        r.add_device(Dialect::AlibabaSystem, &dev("dev1")).unwrap();
        assert!(r
            .handle_message("/sys/a1GFjLP3xxC/dev1/rrpc/request/1", b"", 5)
            .is_ok());
        assert_eq!(r.device_count(), 2);
    }

    #[test]
    fn one_custom_topic_serves_one_device() {
        let mut r = Router::new(RouterConfig::default());
        let topic = Some("/a1GFjLP3xxC/shared/user/rrpc");
        let a = Identity {
            product_key: PK,
            device_name: "a",
            custom_topic: topic,
        };
        r.add_device(Dialect::AlibabaCustom, &a).unwrap();
        let b = Identity {
            device_name: "b",
            ..a
        };
        let e = r.add_device(Dialect::AlibabaCustom, &b).unwrap_err();
        assert_eq!(e, DeviceError::TopicInUse(format!("{PK}/a")));
        assert!(e
            .to_string()
            .contains("custom topic already receives requests for device"));
        assert_eq!(
            r.add_device(Dialect::AlibabaCustom, &a).unwrap_err(),
            DeviceError::AlreadyExists
        );
    }

    #[test]
    fn many_devices_dispatch_by_topic() {
        let mut r = Router::new(RouterConfig::default());
        let names: Vec<String> = (0..1000).map(|i| format!("dev{i}")).collect();
        for n in &names {
            r.add_device(Dialect::AlibabaSystem, &dev(n)).unwrap();
        }
        for (i, n) in names.iter().enumerate().step_by(97) {
            let topic = format!("/sys/{PK}/{n}/rrpc/request/{i}");
            let a = r.handle_message(&topic, b"", 0).unwrap();
            assert_eq!(
                r.request_device(a.device).unwrap().identity.device_name,
                n.as_str()
            );
        }
    }

    #[test]
    fn a_device_guessed_from_the_raw_topic_is_confirmed() {
        // The same names in two dialects hash alike: the guess taken from a
        // topic's names can point at the other dialect's device first.
        for tencent_first in [true, false] {
            let mut r = Router::new(RouterConfig::default());
            let order = if tencent_first {
                [Dialect::Tencent, Dialect::AlibabaSystem]
            } else {
                [Dialect::AlibabaSystem, Dialect::Tencent]
            };
            for d in order {
                r.add_device(d, &dev("dev1")).unwrap();
            }
            for (d, topic) in [
                (
                    Dialect::AlibabaSystem,
                    format!("/sys/{PK}/dev1/rrpc/request/7"),
                ),
                (Dialect::Tencent, format!("$rrpc/rxd/{PK}/dev1/7")),
            ] {
                let a = r.handle_message_bytes(topic.as_bytes(), b"", 0).unwrap();
                assert_eq!(r.request_device(a.device).unwrap().dialect, d, "{topic}");
            }
        }
    }

    #[test]
    fn topics_that_defeat_the_guess_are_classified_as_without_it() {
        let setup = || {
            let mut r = router();
            r.add_device(Dialect::Tencent, &dev("dev1")).unwrap();
            r.remove_device(Dialect::Tencent, &dev("dev1"), 0).unwrap();
            r
        };
        let (mut guessing, mut plain) = (setup(), setup());
        let topics: [&[u8]; 12] = [
            b"/sys/",
            b"/sys/a1GFjLP3xxC",
            b"/sys/a1GFjLP3xxC/dev1",
            b"/sys/a1GFjLP3xxC/dev1/rrpc/request",
            b"/sys//dev1/rrpc/request/1",
            b"/sys/a1GFjLP3xxC//rrpc/request/1",
            b"/sys/a1GFjLP3xxC/dev1/rrpc/request/",
            b"/sys/a1GFjLP3xxC/dev2/rrpc/request/1",
            b"/sys/a1GFjLP3xxC/dev1/rrpc/response/1",
            // Removed: the index no longer names it.
            b"$rrpc/rxd/a1GFjLP3xxC/dev1/1",
            b"$rrpc/rxd/",
            b"/ext/rrpc/1/a1GFjLP3xxC/dev1",
        ];
        for topic in topics {
            let t = std::str::from_utf8(topic).unwrap();
            let got = guessing
                .handle_message_bytes(topic, b"", 0)
                .map(|a| a.token);
            let want = plain.handle(t, b"", 0, None).map(|a| a.token);
            assert!(got.is_err(), "{t}: {got:?}");
            assert_eq!(got, want, "{t}");
        }
        assert_eq!(guessing.stats(), plain.stats());
        let bad = b"/sys/a1GFjLP3xxC/\xffdev1/rrpc/request/1";
        assert_eq!(
            guessing.handle_message_bytes(bad, b"", 0).unwrap_err(),
            Dropped::Malformed("the topic is not valid UTF-8")
        );
        // The device still answers.
        let t = format!("/sys/{PK}/dev1/rrpc/request/9");
        assert!(guessing.handle_message(&t, b"", 0).is_ok());
    }

    #[test]
    fn deadlines_of_different_timeouts_expire_in_their_own_order() {
        let mut r = Router::new(RouterConfig::default());
        r.add_device(Dialect::AlibabaSystem, &dev("a")).unwrap();
        r.add_device(Dialect::Tencent, &dev("t")).unwrap();
        r.handle_message("/sys/a1GFjLP3xxC/a/rrpc/request/1", b"", 0)
            .unwrap(); // 8000
        r.handle_message("$rrpc/rxd/a1GFjLP3xxC/t/1", b"", 1000)
            .unwrap(); // 5000
        assert_eq!(r.next_deadline(), Some(5000));
        assert_eq!(r.expire(5001), 1, "the Tencent request expires first");
        assert_eq!(r.next_deadline(), Some(8000));
        assert_eq!(r.expire(8001), 1);
        assert_eq!(r.pending_len(), 0);
    }

    #[test]
    fn out_of_order_replies_keep_the_deadline_queue_bounded() {
        let mut r = Router::new(RouterConfig {
            max_pending: 8,
            ..RouterConfig::default()
        });
        r.add_device(Dialect::AlibabaSystem, &dev("d")).unwrap();
        // One request stays pending for the whole run...
        let stuck = r
            .handle_message("/sys/a1GFjLP3xxC/d/rrpc/request/stuck", b"", 0)
            .unwrap()
            .token;
        // ...while thousands are answered newest first in pairs.
        for i in 0..5000u32 {
            let t1 = r
                .handle_message(&format!("/sys/a1GFjLP3xxC/d/rrpc/request/{i}a"), b"", 1)
                .unwrap()
                .token;
            let t2 = r
                .handle_message(&format!("/sys/a1GFjLP3xxC/d/rrpc/request/{i}b"), b"", 1)
                .unwrap()
                .token;
            r.reply(t2, b"", 1, |_, _| Ok::<(), ()>(())).unwrap();
            r.reply(t1, b"", 1, |_, _| Ok::<(), ()>(())).unwrap();
        }
        let queued: usize = r.deadlines.iter().map(|q| q.fifo.len()).sum();
        assert!(
            queued <= 2 * 8 + 16 + 1,
            "{queued} deadlines queued for 1 pending request"
        );
        assert_eq!(r.pending_len(), 1);
        assert_eq!(r.expire(8001), 1);
        assert_eq!(
            r.reply(stuck, b"", 8002, |_, _| Ok::<(), ()>(())),
            Err(ReplyError::Expired)
        );
    }

    #[test]
    fn two_phase_replies_exclude_each_other_and_keep_the_token_on_failure() {
        let mut r = router();
        let t = r
            .handle_message("/sys/a1GFjLP3xxC/dev1/rrpc/request/1", b"", 0)
            .unwrap()
            .token;
        let topic = r.begin_reply(t, 3, 1).unwrap();
        assert_eq!(topic, "/sys/a1GFjLP3xxC/dev1/rrpc/response/1");
        // While the first reply is being sent, a second is refused.
        assert_eq!(r.begin_reply(t, 3, 1), Err(ReplyError::InProgress));
        assert_eq!(
            r.reply(t, b"x", 1, |_, _| Ok::<(), ()>(())),
            Err(ReplyError::InProgress)
        );
        r.end_reply(t, true, 2);
        assert_eq!(r.begin_reply(t, 3, 3), Err(ReplyError::AlreadyReplied));
        assert_eq!(r.stats().replied, 1);

        // A failed send keeps the request pending: it may be answered again
        // until its deadline, as after a failed `reply`.
        let t2 = r
            .handle_message("/sys/a1GFjLP3xxC/dev1/rrpc/request/2", b"", 0)
            .unwrap()
            .token;
        r.begin_reply(t2, 0, 1).unwrap();
        r.end_reply(t2, false, 1);
        assert_eq!(r.pending_len(), 1);
        assert_eq!(r.stats().send_failures, 1);
        assert_eq!(
            r.begin_reply(t2, 0, 2).unwrap(),
            "/sys/a1GFjLP3xxC/dev1/rrpc/response/2"
        );
        r.end_reply(t2, false, 2);
        r.reply(t2, b"", 3, |_, _| Ok::<(), ()>(())).unwrap();
        assert_eq!(r.pending_len(), 0);
        assert_eq!(r.begin_reply(t2, 0, 4), Err(ReplyError::AlreadyReplied));
        let s = r.stats();
        assert_eq!((s.send_failures, s.replied), (2, 2));

        // The deadline may pass while a reply is being sent.
        let t3 = r
            .handle_message("/sys/a1GFjLP3xxC/dev1/rrpc/request/3", b"", 0)
            .unwrap()
            .token;
        r.begin_reply(t3, 0, 1).unwrap();
        assert_eq!(r.expire(9000), 1);
        // The reply that went out while the request expired is still counted.
        r.end_reply(t3, true, 9001);
        assert_eq!(r.stats().replied, 3);
        assert_eq!(r.begin_reply(t3, 0, 9002), Err(ReplyError::Expired));

        // A failed send of a request that expired meanwhile: counted, and the
        // request stays expired.
        let t4 = r
            .handle_message("/sys/a1GFjLP3xxC/dev1/rrpc/request/4", b"", 10_000)
            .unwrap()
            .token;
        r.begin_reply(t4, 0, 10_001).unwrap();
        assert_eq!(r.expire(20_000), 1);
        r.end_reply(t4, false, 20_001);
        assert_eq!(r.stats().send_failures, 3);
        assert_eq!(r.begin_reply(t4, 0, 20_002), Err(ReplyError::Expired));
        assert_eq!(r.pending_len(), 0);
    }

    #[test]
    fn attachments_come_back_with_requests() {
        let mut r = Router::new(RouterConfig::default());
        let tag: Arc<dyn std::any::Any + Send + Sync> = Arc::new(42u32);
        r.add_device_with(Dialect::AlibabaSystem, &dev("dev1"), Attachment(Some(tag)))
            .unwrap();
        let a = r
            .handle_message("/sys/a1GFjLP3xxC/dev1/rrpc/request/1", b"", 0)
            .unwrap();
        let d = r.request_device(a.device).unwrap();
        let got = d.attachment.unwrap().downcast_ref::<u32>();
        assert_eq!(got, Some(&42));
        // The device handed to the application is the same registration.
        assert_eq!(r.device(a.device).unwrap().device_name(), "dev1");
        r.remove_device(Dialect::AlibabaSystem, &dev("dev1"), 0)
            .unwrap();
        assert!(r.request_device(a.device).is_none());
        assert!(r.device(a.device).is_none());
        // A new registration in the same slot is a different device.
        r.add_device(Dialect::AlibabaSystem, &dev("dev1")).unwrap();
        assert!(r.request_device(a.device).is_none());
    }

    #[test]
    fn content_type_comes_out_of_the_message_id_level() {
        let mut r = router();
        let topic = format!("/sys/{PK}/dev1/rrpc/request/889455942124347392;ct=65");
        let a = r.handle_message(&topic, b"x", 0).unwrap();
        assert_eq!(a.message_id, "889455942124347392");
        assert_eq!(a.content_type, Some(65));
        let mut sent = String::new();
        r.reply(a.token, b"y", 1, |t, _| {
            sent = t.to_string();
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(
            sent,
            format!("/sys/{PK}/dev1/rrpc/response/889455942124347392;ct=65")
        );
        // The same request again is a duplicate; a plain one with the same id is not.
        assert_eq!(
            r.handle_message(&topic, b"x", 2).unwrap_err(),
            Dropped::Duplicate
        );
        let plain = format!("/sys/{PK}/dev1/rrpc/request/889455942124347392");
        let a = r.handle_message(&plain, b"x", 3).unwrap();
        assert_eq!((a.message_id, a.content_type), ("889455942124347392", None));
    }

    #[test]
    fn long_identities_live_outside_the_dispatch_record() {
        let mut r = router();
        let long = "d".repeat(crate::dialect::MAX_IDENTITY_LEN);
        let custom = format!("/{PK}/{long}/user/update");
        let ids = [
            Identity {
                product_key: PK,
                device_name: &long,
                custom_topic: None,
            },
            Identity {
                product_key: PK,
                device_name: "dev2",
                custom_topic: Some(&custom),
            },
        ];
        r.add_device(Dialect::AlibabaSystem, &ids[0]).unwrap();
        r.add_device(Dialect::AlibabaCustom, &ids[1]).unwrap();
        let topics = [
            format!("/sys/{PK}/{long}/rrpc/request/7"),
            format!("/ext/rrpc/7{custom}"),
        ];
        let want = [
            format!("/sys/{PK}/{long}/rrpc/response/7"),
            format!("/ext/rrpc/7{custom}"),
        ];
        for ((topic, id), want) in topics.iter().zip(&ids).zip(&want) {
            let a = r.handle_message(topic, b"x", 0).unwrap();
            let d = r.request_device(a.device).unwrap();
            assert_eq!(d.identity.product_key, id.product_key);
            assert_eq!(d.identity.device_name, id.device_name);
            assert_eq!(d.identity.custom_topic, id.custom_topic);
            let mut sent = String::new();
            r.reply(a.token, b"y", 1, |t, _| {
                sent = t.to_string();
                Ok::<(), ()>(())
            })
            .unwrap();
            assert_eq!(&sent, want);
        }
    }
}
