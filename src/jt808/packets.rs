//! Long messages: splitting a pass-through body into sub-packages, and putting
//! received sub-packages back together.
//!
//! A body longer than one frame carries (1023 bytes) goes out as consecutive
//! packets with the sub-package bit set, package count and index (from 1) in the
//! header, and consecutive serial numbers. For 0x8900/0x0900 the type byte sits
//! in the first packet only.

use std::collections::{BTreeMap, HashMap};

use super::adapter::ConfigError;
use super::codec::{encode_frame, EncodeError, Frame, Header, Package, Phone, MAX_BODY_LEN};

/// Encodes `content_type | content` as the body of `template.msg_id` (0x8900,
/// 0x0900, or any id whose body starts with a type byte), in frames whose bodies
/// hold at most `max_body` bytes (1023 for the standard's limit).
///
/// A body that fits goes out as one frame without package fields. A longer one
/// goes out as `ceil(len / max_body)` packets: packet `i` (from 1) has package
/// count and index set and serial `template.serial + i - 1` (wrapping at
/// 65535); the type byte leads the first packet only. The template's own
/// `package` field is ignored. Each element of the result is one escaped frame,
/// flags included, ready to send in order.
///
/// # Errors
/// [`EncodeError::MaxBody`] for `max_body` outside 2..=1023,
/// [`EncodeError::TooManyPackets`] when more than 65535 packets would be needed,
/// and the header errors of [`encode_frame`].
pub fn split_passthrough(
    template: &Header,
    content_type: u8,
    content: &[u8],
    max_body: usize,
) -> Result<Vec<Vec<u8>>, EncodeError> {
    if !(2..=MAX_BODY_LEN).contains(&max_body) {
        return Err(EncodeError::MaxBody(max_body));
    }
    let total = content.len() + 1;
    let mut header = template.clone();
    let mut body = Vec::with_capacity(total.min(max_body));
    if total <= max_body {
        header.package = None;
        body.push(content_type);
        body.extend_from_slice(content);
        let mut out = Vec::new();
        encode_frame(&header, &body, &mut out)?;
        return Ok(vec![out]);
    }
    let count = total.div_ceil(max_body);
    let count16 = u16::try_from(count).map_err(|_| EncodeError::TooManyPackets(count))?;
    let mut frames = Vec::with_capacity(count);
    // The first packet: type byte and the first max_body - 1 content bytes.
    let (first, mut rest) = content.split_at(max_body - 1);
    for index in 1..=count16 {
        body.clear();
        if index == 1 {
            body.push(content_type);
            body.extend_from_slice(first);
        } else {
            let take = rest.len().min(max_body);
            body.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
        }
        header.serial = template.serial.wrapping_add(index - 1);
        header.package = Some(Package {
            count: count16,
            index,
        });
        let mut out = Vec::with_capacity(body.len() + 32);
        encode_frame(&header, &body, &mut out)?;
        frames.push(out);
    }
    Ok(frames)
}

/// Limits of a [`Reassembler`]: partial messages, body bytes and packets
/// held, each over all terminals and per terminal, so that one terminal cannot
/// take the room of the others. Memory held is at most `max_bytes` plus about
/// 64 bytes of bookkeeping per held packet (`max_packets`): with the defaults,
/// about 5 MiB in all and 1.1 MiB per terminal.
///
/// [`Reassembler::new`] refuses a configuration with a limit of 0, a
/// per-terminal limit above its total, or a limit above its documented
/// maximum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReassemblerConfig {
    /// Messages being put together at once, over all terminals. Default 256,
    /// at most [`ReassemblerConfig::MAX_PARTIALS`].
    pub max_partials: usize,
    /// Messages being put together at once for one terminal. Default 4.
    pub max_partials_per_terminal: usize,
    /// Body bytes held over all partial messages. Default 4 MiB, at most
    /// [`ReassemblerConfig::MAX_BYTES`].
    pub max_bytes: usize,
    /// Body bytes held in the partial messages of one terminal. Default 1 MiB.
    pub max_bytes_per_terminal: usize,
    /// Packets held over all partial messages (empty packets count too).
    /// Default 16384, at most [`ReassemblerConfig::MAX_PACKETS`].
    pub max_packets: usize,
    /// Packets held for one terminal; a message announcing more packets than
    /// this is refused at its first packet, since it could never complete.
    /// Default 1024 (1024 full packets carry 1 MiB).
    pub max_packets_per_terminal: usize,
    /// A partial message is dropped this long after its first packet arrived.
    /// Default 60000, 1 to [`ReassemblerConfig::MAX_TIMEOUT_MS`].
    pub timeout_ms: u64,
}

impl ReassemblerConfig {
    /// Largest `max_partials` (and `max_partials_per_terminal`).
    pub const MAX_PARTIALS: usize = 65_536;
    /// Largest `max_bytes` (and `max_bytes_per_terminal`): 256 MiB.
    pub const MAX_BYTES: usize = 256 << 20;
    /// Largest `max_packets` (and `max_packets_per_terminal`).
    pub const MAX_PACKETS: usize = 1 << 20;
    /// Largest `timeout_ms`: one hour.
    pub const MAX_TIMEOUT_MS: u64 = 3_600_000;

    /// Checks every limit against its documented range.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first limit out of range.
    pub fn check(&self) -> Result<(), ConfigError> {
        let pairs = [
            (
                "max_partials",
                self.max_partials,
                "max_partials_per_terminal",
                self.max_partials_per_terminal,
                Self::MAX_PARTIALS,
            ),
            (
                "max_bytes",
                self.max_bytes,
                "max_bytes_per_terminal",
                self.max_bytes_per_terminal,
                Self::MAX_BYTES,
            ),
            (
                "max_packets",
                self.max_packets,
                "max_packets_per_terminal",
                self.max_packets_per_terminal,
                Self::MAX_PACKETS,
            ),
        ];
        for (total_name, total, per_name, per, max) in pairs {
            if !(1..=max).contains(&total) {
                return Err(ConfigError::new(format!(
                    "reassembly {total_name} {total} is outside 1..={max}"
                )));
            }
            if !(1..=total).contains(&per) {
                return Err(ConfigError::new(format!(
                    "reassembly {per_name} {per} is outside 1..={total} ({total_name})"
                )));
            }
        }
        if !(1..=Self::MAX_TIMEOUT_MS).contains(&self.timeout_ms) {
            return Err(ConfigError::new(format!(
                "reassembly timeout_ms {} is outside 1..={}",
                self.timeout_ms,
                Self::MAX_TIMEOUT_MS
            )));
        }
        Ok(())
    }
}

impl Default for ReassemblerConfig {
    /// 256 partial messages (4 per terminal), 4 MiB (1 MiB per terminal),
    /// 16384 packets (1024 per terminal), 60 s.
    fn default() -> Self {
        ReassemblerConfig {
            max_partials: 256,
            max_partials_per_terminal: 4,
            max_bytes: 4 << 20,
            max_bytes_per_terminal: 1 << 20,
            max_packets: 16_384,
            max_packets_per_terminal: 1024,
            timeout_ms: 60_000,
        }
    }
}

/// Why a packet was not taken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReassemblyError {
    /// Package fields with `index` outside `1..=count`.
    #[error("package index {} of {} (indices run from 1 to the count)", .0.index, .0.count)]
    BadPackage(Package),
    /// A packet whose index was already received for the same message.
    #[error("0x{msg_id:04x} packet {index} of {count} received twice")]
    Duplicate {
        /// Message id.
        msg_id: u16,
        /// The repeated index.
        index: u16,
        /// The message's package count.
        count: u16,
    },
    /// A packet whose count differs from the count of the other packets of its
    /// message (same terminal, message id and first serial).
    #[error("0x{msg_id:04x} packet says {found} packets, earlier packets of the message said {expected}")]
    InconsistentCount {
        /// Message id.
        msg_id: u16,
        /// Count of the packets received before.
        expected: u16,
        /// Count of this packet.
        found: u16,
    },
    /// The partial-message limit is reached; the packet is dropped.
    #[error("{max} partial messages already held; packet dropped")]
    TooManyPartials {
        /// The limit.
        max: usize,
    },
    /// The byte limit would be exceeded; the packet is dropped.
    #[error("partial messages would exceed {max} bytes; packet dropped")]
    TooManyBytes {
        /// The limit.
        max: usize,
    },
    /// The packet limit would be exceeded, or the message announces more
    /// packets than one terminal may hold; the packet is dropped.
    #[error("partial messages would exceed {max} packets; packet dropped")]
    TooManyPackets {
        /// The limit.
        max: usize,
    },
    /// The terminal's own share of a limit is used up; the packet is dropped.
    /// Other terminals are not affected.
    #[error("the terminal's partial messages would exceed {limit} ({max}); packet dropped")]
    TerminalLimit {
        /// Which limit: `max_partials_per_terminal`, `max_bytes_per_terminal`
        /// or `max_packets_per_terminal`.
        limit: &'static str,
        /// Its value.
        max: usize,
    },
}

/// One message being put together. Keyed by terminal, message id and the serial
/// of its first packet (`serial - (index - 1)`, since packets have consecutive
/// serials).
#[derive(Debug)]
struct Partial {
    count: u16,
    first_header: Option<Header>,
    parts: BTreeMap<u16, Vec<u8>>,
    bytes: usize,
    started_ms: u64,
}

/// Which message a packet belongs to: terminal, message id, serial of the first packet.
type MessageKey = (Phone, u16, u16);

/// What one terminal's partial messages hold.
#[derive(Clone, Copy, Debug, Default)]
struct Usage {
    partials: usize,
    bytes: usize,
    packets: usize,
}

/// Puts sub-packaged messages back together, within bounds on the partial
/// messages, the bytes and the packets they hold, over all terminals and per
/// terminal ([`ReassemblerConfig`]). Time is an argument (`now_ms`, any
/// monotonic milliseconds), so the reassembler has no clock of its own.
#[derive(Debug, Default)]
pub struct Reassembler {
    config: ReassemblerConfig,
    partials: HashMap<MessageKey, Partial>,
    usage: HashMap<Phone, Usage>,
    total: Usage,
}

impl Reassembler {
    /// A reassembler with these limits.
    ///
    /// # Errors
    /// [`ConfigError`] when a limit is outside its range
    /// ([`ReassemblerConfig::check`]).
    pub fn new(config: ReassemblerConfig) -> Result<Reassembler, ConfigError> {
        config.check()?;
        Ok(Reassembler {
            config,
            partials: HashMap::new(),
            usage: HashMap::new(),
            total: Usage::default(),
        })
    }

    /// Partial messages held.
    pub fn partials(&self) -> usize {
        self.partials.len()
    }

    /// Body bytes held in partial messages.
    pub fn buffered_bytes(&self) -> usize {
        self.total.bytes
    }

    /// Packets held in partial messages.
    pub fn buffered_packets(&self) -> usize {
        self.total.packets
    }

    /// Partial messages, bytes and packets held for one terminal.
    pub fn terminal_usage(&self, phone: &Phone) -> (usize, usize, usize) {
        self.usage
            .get(phone)
            .map_or((0, 0, 0), |u| (u.partials, u.bytes, u.packets))
    }

    /// Gives back what a dropped or finished partial message held.
    fn release(&mut self, phone: &Phone, p: &Partial) {
        let packets = p.parts.len();
        self.total.partials -= 1;
        self.total.bytes -= p.bytes;
        self.total.packets -= packets;
        if let Some(u) = self.usage.get_mut(phone) {
            u.partials -= 1;
            u.bytes -= p.bytes;
            u.packets -= packets;
            if u.partials == 0 {
                self.usage.remove(phone);
            }
        }
    }

    fn drop_where(&mut self, mut gone: impl FnMut(&MessageKey, &Partial) -> bool) -> usize {
        let keys: Vec<MessageKey> = self
            .partials
            .iter()
            .filter(|(k, p)| gone(k, p))
            .map(|(k, _)| *k)
            .collect();
        for k in &keys {
            if let Some(p) = self.partials.remove(k) {
                self.release(&k.0, &p);
            }
        }
        keys.len()
    }

    /// Drops partial messages whose first packet arrived `timeout_ms` or more
    /// before `now_ms`; returns how many were dropped.
    pub fn expire(&mut self, now_ms: u64) -> usize {
        let timeout = self.config.timeout_ms;
        self.drop_where(|_, p| now_ms.saturating_sub(p.started_ms) >= timeout)
    }

    /// Drops the partial messages of terminal `phone` (it went away); returns how
    /// many were dropped.
    pub fn forget(&mut self, phone: &Phone) -> usize {
        if !self.usage.contains_key(phone) {
            return 0;
        }
        self.drop_where(|k, _| k.0 == *phone)
    }

    /// Takes one frame. A frame without package fields is a whole message and
    /// comes straight back. A packet is held until every packet of its message
    /// is in; then the whole message comes back: the first packet's header with
    /// `package` cleared, and the bodies concatenated in index order.
    /// Partial messages older than the timeout are dropped first.
    ///
    /// # Errors
    /// [`ReassemblyError`] for package fields outside `1..=count`, a packet
    /// received twice, a count that differs from the message's other packets, or
    /// a limit that would be exceeded (over all terminals, or the terminal's
    /// own share). The packet is dropped; the partial message it belongs to, if
    /// any, is kept.
    pub fn push(&mut self, frame: Frame, now_ms: u64) -> Result<Option<Frame>, ReassemblyError> {
        let Some(pkg) = frame.header.package else {
            return Ok(Some(frame));
        };
        if !pkg.is_valid() {
            return Err(ReassemblyError::BadPackage(pkg));
        }
        self.expire(now_ms);
        let msg_id = frame.header.msg_id;
        let phone = frame.header.phone;
        let first_serial = frame.header.serial.wrapping_sub(pkg.index - 1);
        let key = (phone, msg_id, first_serial);
        let len = frame.body.len();
        let c = self.config;
        let is_new = !self.partials.contains_key(&key);
        if is_new && pkg.count == 1 {
            let mut header = frame.header;
            header.package = None;
            return Ok(Some(Frame {
                header,
                body: frame.body,
            }));
        }
        if let Some(partial) = self.partials.get(&key) {
            if partial.count != pkg.count {
                return Err(ReassemblyError::InconsistentCount {
                    msg_id,
                    expected: partial.count,
                    found: pkg.count,
                });
            }
            if partial.parts.contains_key(&pkg.index) {
                return Err(ReassemblyError::Duplicate {
                    msg_id,
                    index: pkg.index,
                    count: pkg.count,
                });
            }
        }
        if usize::from(pkg.count) > c.max_packets_per_terminal {
            return Err(ReassemblyError::TooManyPackets {
                max: c.max_packets_per_terminal,
            });
        }
        let mine = self.usage.get(&phone).copied().unwrap_or_default();
        if self.total.bytes + len > c.max_bytes {
            return Err(ReassemblyError::TooManyBytes { max: c.max_bytes });
        }
        if mine.bytes + len > c.max_bytes_per_terminal {
            return Err(ReassemblyError::TerminalLimit {
                limit: "max_bytes_per_terminal",
                max: c.max_bytes_per_terminal,
            });
        }
        if self.total.packets >= c.max_packets {
            return Err(ReassemblyError::TooManyPackets { max: c.max_packets });
        }
        if mine.packets >= c.max_packets_per_terminal {
            return Err(ReassemblyError::TerminalLimit {
                limit: "max_packets_per_terminal",
                max: c.max_packets_per_terminal,
            });
        }
        if is_new {
            if self.partials.len() >= c.max_partials {
                return Err(ReassemblyError::TooManyPartials {
                    max: c.max_partials,
                });
            }
            if mine.partials >= c.max_partials_per_terminal {
                return Err(ReassemblyError::TerminalLimit {
                    limit: "max_partials_per_terminal",
                    max: c.max_partials_per_terminal,
                });
            }
            self.partials.insert(
                key,
                Partial {
                    count: pkg.count,
                    first_header: None,
                    parts: BTreeMap::new(),
                    bytes: 0,
                    started_ms: now_ms,
                },
            );
            self.total.partials += 1;
            self.usage.entry(phone).or_default().partials += 1;
        }
        let Some(partial) = self.partials.get_mut(&key) else {
            return Ok(None); // inserted just above
        };
        if pkg.index == 1 {
            partial.first_header = Some(frame.header);
        }
        partial.parts.insert(pkg.index, frame.body);
        partial.bytes += len;
        self.total.bytes += len;
        self.total.packets += 1;
        if let Some(u) = self.usage.get_mut(&phone) {
            u.bytes += len;
            u.packets += 1;
        }
        if partial.parts.len() < usize::from(partial.count) {
            return Ok(None);
        }
        let Some(done) = self.partials.remove(&key) else {
            return Ok(None);
        };
        self.release(&phone, &done);
        let Some(mut header) = done.first_header else {
            // Every index 1..=count is present, so packet 1 was among them.
            return Ok(None);
        };
        header.package = None;
        let mut body = Vec::with_capacity(done.bytes);
        for part in done.parts.into_values() {
            body.extend_from_slice(&part);
        }
        Ok(Some(Frame { header, body }))
    }
}
