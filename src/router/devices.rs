//! The registered devices: the [`Device`] records handed to the application,
//! the compact dispatch record ([`Slot`]) a request reads, and the registry that
//! finds a device's slot by its key ([`DeviceKey`], in a `hashbrown` table).

use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::{DefaultHashBuilder, HashMap, HashTable};

use super::types::{Attachment, DeviceError, DeviceRef, RequestDevice};
use crate::dialect::{self, Dialect, Identity};

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

/// What dispatching a request and building its reply read of a device: one
/// 64-byte record (a cache line) in a vector indexed by slot, with the product key,
/// device name and custom topic inline when they fit together in 47 bytes, as
/// Alibaba's names do (11-byte product keys, device names of at most 32). A
/// request thus reads one line of its device, however many devices there are;
/// 100,000 devices' records take 6.4 MB. The read is started before the topic
/// is parsed ([`Registry::candidate`]).
#[repr(C, align(64))]
pub(super) struct Slot {
    /// Which registration of the slot this is (see [`DeviceRef`]).
    pub(super) generation: u32,
    pub(super) dialect: Dialect,
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
/// The device's attachment is in `Registry::attachments`.
const HAS_ATTACHMENT: u8 = 2;
/// The dialect's request topics carry the product key.
const KEY_PK: u8 = 4;
/// The dialect's request topics carry the device name.
const KEY_DN: u8 = 8;
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
        if dialect.uses_product_key() {
            flags |= KEY_PK;
        }
        if dialect.uses_device_name() {
            flags |= KEY_DN;
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
    pub(super) fn is(&self, key: &DeviceKey<'_>) -> bool {
        let custom = self.flags & HAS_CUSTOM_TOPIC != 0;
        match *key {
            DeviceKey::Name(d, names) => self.dialect == d && !custom && self.names() == names,
            DeviceKey::Topic(t) => custom && &self.text()[self.names_len()..] == t,
        }
    }

    /// The names the dialect's request topics carry, as [`key_names`] joins
    /// them: `{product key}/{device name}` (system and Tencent topics, the
    /// common case, first), the device name or the product key alone, or
    /// nothing (ThingsBoard, Azure).
    #[inline]
    fn names(&self) -> &str {
        let text = self.text();
        let pk = usize::from(self.pk_len);
        match self.flags & (KEY_PK | KEY_DN) {
            f if f == KEY_PK | KEY_DN => &text[..self.names_len()],
            KEY_DN => &text[pk + 1..self.names_len()],
            KEY_PK => &text[..pk],
            _ => "",
        }
    }

    /// What the device is looked up by (see [`DeviceKey`]).
    fn key_text(&self) -> &str {
        if self.flags & HAS_CUSTOM_TOPIC != 0 {
            &self.text()[self.names_len()..]
        } else {
            self.names()
        }
    }
}

/// How a device is found from a received topic. Only the text is hashed.
#[derive(Clone, Copy)]
pub(super) enum DeviceKey<'a> {
    /// System and Tencent topics: dialect and `{product key}/{device name}`
    /// (unambiguous: neither part may contain `/`).
    Name(Dialect, &'a str),
    /// Alibaba custom topics: the custom topic.
    Topic(&'a str),
}

/// The names of `id` that `dialect`'s request topics carry, joined as a
/// request's are (see `joined_names` in admission): `{pk}/{dn}`, `{dn}`, `{pk}`
/// or nothing.
pub(super) fn key_names(dialect: Dialect, id: &Identity<'_>) -> String {
    match (dialect.uses_product_key(), dialect.uses_device_name()) {
        (true, true) => format!("{}/{}", id.product_key, id.device_name),
        (false, true) => id.device_name.to_string(),
        (true, false) => id.product_key.to_string(),
        (false, false) => String::new(),
    }
}

impl<'a> DeviceKey<'a> {
    /// The key of a registration; `names` is its [`key_names`].
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

/// The devices by slot, and the index from a [`DeviceKey`] to a slot.
pub(super) struct Registry {
    /// Dispatch records by slot.
    slots: Vec<Option<Slot>>,
    /// The devices by slot, as handed to the application.
    devices: Vec<Option<Arc<Device>>>,
    /// Attachments by slot, of the devices registered with one.
    attachments: HashMap<u32, Arc<dyn std::any::Any + Send + Sync>>,
    free_slots: Vec<u32>,
    generation: u32,
    /// Slots by [`DeviceKey`] (dialect, product key and device name, or custom
    /// topic), hashed by the key's text; entries are compared with the slot's
    /// record, so the table holds only slot numbers.
    by_key: HashTable<u32>,
    hasher: DefaultHashBuilder,
    /// The slots of the MQTT 5 request/response devices, whose request
    /// filters a request's topic is matched against one by one (at most
    /// [`MAX_MQTT5_DEVICES`]).
    mqtt5: Vec<u32>,
}

/// Most MQTT 5 request/response devices ([`Dialect::Mqtt5`]) a router serves:
/// a request's topic is matched against each one's filter in turn.
pub const MAX_MQTT5_DEVICES: usize = 64;

impl Registry {
    pub(super) fn new() -> Registry {
        Registry {
            slots: Vec::new(),
            devices: Vec::new(),
            attachments: HashMap::new(),
            free_slots: Vec::new(),
            generation: 0,
            by_key: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            mqtt5: Vec::new(),
        }
    }

    /// Registered devices.
    pub(super) fn len(&self) -> usize {
        self.slots.len() - self.free_slots.len()
    }

    /// Every registered device, in slot order.
    pub(super) fn devices(&self) -> impl Iterator<Item = &Arc<Device>> {
        self.devices.iter().flatten()
    }

    /// The device of an accepted request, while it is registered.
    pub(super) fn device(&self, r: DeviceRef) -> Option<&Arc<Device>> {
        self.live_slot(r)?;
        self.devices[r.slot as usize].as_ref()
    }

    /// See [`Router::request_device`](super::Router::request_device).
    pub(super) fn request_device(&self, r: DeviceRef) -> Option<RequestDevice<'_>> {
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
        self.record(r.slot).filter(|s| s.generation == r.generation)
    }

    /// The dispatch record of slot `i`, if a device holds it.
    #[inline]
    pub(super) fn record(&self, i: u32) -> Option<&Slot> {
        self.slots.get(i as usize)?.as_ref()
    }

    /// Whether slot `i` holds the device `key` names (a free slot holds none).
    #[inline]
    pub(super) fn holds(&self, i: u32, key: &DeviceKey<'_>) -> bool {
        holds(&self.slots, i, key)
    }

    /// Registers a device with what the transport attaches to it.
    pub(super) fn add(
        &mut self,
        dialect: Dialect,
        id: &Identity<'_>,
        attachment: Attachment,
    ) -> Result<Arc<Device>, DeviceError> {
        dialect::validate_identity(dialect, id).map_err(DeviceError::Invalid)?;
        let names = key_names(dialect, id);
        let key = DeviceKey::of(dialect, id, &names);
        if let Some(i) = self.lookup(&key) {
            let other = self.slots[i as usize]
                .as_ref()
                .expect("indexed slot is live")
                .identity();
            if other.product_key != id.product_key || other.device_name != id.device_name {
                let device = format!("{}/{}", other.product_key, other.device_name);
                return Err(if id.custom_topic.is_some() {
                    DeviceError::TopicInUse(device)
                } else {
                    DeviceError::OnePerConnection {
                        dialect: dialect.name(),
                        device,
                    }
                });
            }
            return Err(DeviceError::AlreadyExists);
        }
        let mqtt5 = dialect.uses_mqtt5_properties();
        if mqtt5 && self.mqtt5.len() >= MAX_MQTT5_DEVICES {
            return Err(DeviceError::Mqtt5Full);
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
        if mqtt5 {
            self.mqtt5.push(index);
        }
        let hash = self.hasher.hash_one(key.text().as_bytes());
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.by_key.insert_unique(hash, index, |&i| {
            let slot = slots[i as usize].as_ref();
            slot.map_or(0, |s| hasher.hash_one(s.key_text().as_bytes()))
        });
        Ok(device)
    }

    /// Unregisters a device; returns the slot it held (free now) and the device.
    pub(super) fn remove(
        &mut self,
        dialect: Dialect,
        id: &Identity<'_>,
    ) -> Result<(u32, Arc<Device>), DeviceError> {
        let names = key_names(dialect, id);
        let key = DeviceKey::of(dialect, id, &names);
        let hash = self.hasher.hash_one(key.text().as_bytes());
        let slots = &self.slots;
        let Ok(entry) = self.by_key.find_entry(hash, |&i| holds(slots, i, &key)) else {
            return Err(DeviceError::NotFound);
        };
        let index = entry.remove().0;
        self.slots[index as usize] = None;
        self.attachments.remove(&index);
        self.mqtt5.retain(|&i| i != index);
        let device = self.devices[index as usize]
            .take()
            .expect("indexed slot is live");
        self.free_slots.push(index);
        Ok((index, device))
    }

    /// What the transport attached to the registered devices.
    pub(super) fn attachments(
        &self,
    ) -> impl Iterator<Item = &Arc<dyn std::any::Any + Send + Sync>> {
        self.attachments.values()
    }

    /// What the transport attached to a registered device, if anything.
    pub(super) fn attachment(
        &self,
        dialect: Dialect,
        id: &Identity<'_>,
    ) -> Option<&Arc<dyn std::any::Any + Send + Sync>> {
        let names = key_names(dialect, id);
        let index = self.lookup(&DeviceKey::of(dialect, id, &names))?;
        self.attachments.get(&index)
    }

    /// The slot of the device `key` names.
    pub(super) fn lookup(&self, key: &DeviceKey<'_>) -> Option<u32> {
        let hash = self.hasher.hash_one(key.text().as_bytes());
        self.by_key
            .find(hash, |&i| holds(&self.slots, i, key))
            .copied()
    }

    /// The topic the reply to message `vars.id` of the device in slot `i` goes out on.
    pub(super) fn response_topic(&self, i: u32, vars: &dialect::Vars<'_>) -> String {
        let slot = self.record(i).expect("pending slot is live");
        let names = &slot.text()[..slot.names_len()];
        match slot.dialect.response_topic_by_names(names, vars.id) {
            Some(t) => t,
            None => slot.dialect.response_topic_with(&slot.identity(), vars),
        }
    }

    /// The slot of the first MQTT 5 request/response device, in registration
    /// order, whose request filter `topic` matches, and that filter.
    pub(super) fn match_mqtt5(&self, topic: &str) -> Option<(u32, &str)> {
        if self.mqtt5.is_empty() {
            return None;
        }
        self.mqtt5.iter().find_map(|&i| {
            let filter = self.record(i)?.key_text();
            super::mqtt5::filter_matches(filter, topic).then_some((i, filter))
        })
    }

    /// The envelope of the dialect of the device in slot `i`, and its device
    /// name (what a gateway envelope's reply names).
    pub(super) fn envelope_of(&self, i: u32) -> (dialect::Envelope, &str) {
        let slot = self.record(i).expect("pending slot is live");
        (slot.dialect.envelope(), slot.identity().device_name)
    }

    /// The slot of the first entry of the table that may hold a device
    /// registered under `names`, `{product key}/{device name}` (its control byte
    /// matches the hash of `names`; nothing else is checked), with the CPU asked
    /// to start loading its dispatch record.
    #[inline]
    pub(super) fn candidate(&self, names: &[u8]) -> Option<u32> {
        let slot = *self.by_key.find(self.hasher.hash_one(names), |_| true)?;
        prefetch(self.slots.as_ptr().wrapping_add(slot as usize));
        Some(slot)
    }
}

/// Whether slot `i` of `slots` holds the device `key` names (for closures that
/// borrow the slots while the index is borrowed too).
fn holds(slots: &[Option<Slot>], i: u32, key: &DeviceKey<'_>) -> bool {
    slots
        .get(i as usize)
        .and_then(Option::as_ref)
        .is_some_and(|s| s.is(key))
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

#[cfg(test)]
mod tests {
    use super::super::tests::{dev, request, router, PK};
    use super::super::*;

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
        let t = request(&mut r, "1", 0);
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
    fn devices_removed_and_added_again_are_found_by_their_names() {
        let mut r = Router::new(RouterConfig {
            max_pending: 4096,
            ..RouterConfig::default()
        });
        let name = |i: u32| format!("dev{i}");
        let send = |r: &mut Router, i: u32, id: &str| {
            let topic = format!("/sys/{PK}/{}/rrpc/request/{id}", name(i));
            let got = r.handle_message(&topic, b"", 0);
            got.map(|a| {
                r.request_device(a.device)
                    .unwrap()
                    .identity
                    .device_name
                    .to_string()
            })
        };
        for i in 0..2000 {
            r.add_device(Dialect::AlibabaSystem, &dev(&name(i)))
                .unwrap();
        }
        let removed = |i: &u32| i % 3 != 0;
        for i in (0..2000).filter(removed) {
            r.remove_device(Dialect::AlibabaSystem, &dev(&name(i)), 0)
                .unwrap();
        }
        for i in 0..2000 {
            let want = if removed(&i) {
                Err(Dropped::UnknownDevice)
            } else {
                Ok(name(i))
            };
            assert_eq!(send(&mut r, i, "1"), want);
        }
        // Added again, into the freed slots, and new ones after them.
        for i in (0..2000).filter(removed).chain(2000..2500) {
            r.add_device(Dialect::AlibabaSystem, &dev(&name(i)))
                .unwrap();
        }
        assert_eq!(r.device_count(), 2500);
        for i in 0..2500 {
            assert_eq!(send(&mut r, i, "2"), Ok(name(i)));
        }
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
