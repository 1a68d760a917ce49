//! Long messages: splitting a pass-through body into sub-packages, and putting
//! received sub-packages back together.
//!
//! A body longer than one frame carries (1023 bytes) goes out as consecutive
//! packets with the sub-package bit set, package count and index (from 1) in the
//! header, and consecutive serial numbers. For 0x8900/0x0900 the type byte sits
//! in the first packet only.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

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

/// Limits of a [`Reassembler`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReassemblerConfig {
    /// Messages being put together at once, over all terminals.
    pub max_partials: usize,
    /// Body bytes held over all partial messages.
    pub max_bytes: usize,
    /// A partial message is dropped this long after its first packet arrived.
    pub timeout_ms: u64,
}

impl Default for ReassemblerConfig {
    /// 256 partial messages, 4 MiB, 60 s.
    fn default() -> Self {
        ReassemblerConfig {
            max_partials: 256,
            max_bytes: 4 << 20,
            timeout_ms: 60_000,
        }
    }
}

/// Why a packet was not taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReassemblyError {
    /// Package fields with `index` outside `1..=count`.
    BadPackage(Package),
    /// A packet whose index was already received for the same message.
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
    InconsistentCount {
        /// Message id.
        msg_id: u16,
        /// Count of the packets received before.
        expected: u16,
        /// Count of this packet.
        found: u16,
    },
    /// The partial-message limit is reached; the packet is dropped.
    TooManyPartials {
        /// The limit.
        max: usize,
    },
    /// The byte limit would be exceeded; the packet is dropped.
    TooManyBytes {
        /// The limit.
        max: usize,
    },
}

impl fmt::Display for ReassemblyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReassemblyError::BadPackage(p) => write!(
                f,
                "package index {} of {} (indices run from 1 to the count)",
                p.index, p.count
            ),
            ReassemblyError::Duplicate {
                msg_id,
                index,
                count,
            } => write!(
                f,
                "0x{msg_id:04x} packet {index} of {count} received twice"
            ),
            ReassemblyError::InconsistentCount {
                msg_id,
                expected,
                found,
            } => write!(
                f,
                "0x{msg_id:04x} packet says {found} packets, earlier packets of the message said {expected}"
            ),
            ReassemblyError::TooManyPartials { max } => write!(
                f,
                "{max} partial messages already held; packet dropped"
            ),
            ReassemblyError::TooManyBytes { max } => {
                write!(f, "partial messages would exceed {max} bytes; packet dropped")
            }
        }
    }
}

impl std::error::Error for ReassemblyError {}

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

type Key = (Phone, u16, u16);

/// Puts sub-packaged messages back together, within bounds on the number of
/// partial messages and the bytes they hold. Time is an argument (`now_ms`, any
/// monotonic milliseconds), so the reassembler has no clock of its own.
#[derive(Debug, Default)]
pub struct Reassembler {
    config: ReassemblerConfig,
    partials: HashMap<Key, Partial>,
    bytes: usize,
}

impl Reassembler {
    /// A reassembler with these limits.
    pub fn new(config: ReassemblerConfig) -> Reassembler {
        Reassembler {
            config,
            partials: HashMap::new(),
            bytes: 0,
        }
    }

    /// Partial messages held.
    pub fn partials(&self) -> usize {
        self.partials.len()
    }

    /// Body bytes held in partial messages.
    pub fn buffered_bytes(&self) -> usize {
        self.bytes
    }

    /// Drops partial messages whose first packet arrived `timeout_ms` or more
    /// before `now_ms`; returns how many were dropped.
    pub fn expire(&mut self, now_ms: u64) -> usize {
        let timeout = self.config.timeout_ms;
        let before = self.partials.len();
        let mut freed = 0;
        self.partials.retain(|_, p| {
            let keep = now_ms.saturating_sub(p.started_ms) < timeout;
            if !keep {
                freed += p.bytes;
            }
            keep
        });
        self.bytes -= freed;
        before - self.partials.len()
    }

    /// Drops the partial messages of terminal `phone` (it went away); returns how
    /// many were dropped.
    pub fn forget(&mut self, phone: &Phone) -> usize {
        let before = self.partials.len();
        let mut freed = 0;
        self.partials.retain(|k, p| {
            let keep = k.0 != *phone;
            if !keep {
                freed += p.bytes;
            }
            keep
        });
        self.bytes -= freed;
        before - self.partials.len()
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
    /// a limit that would be exceeded. The packet is dropped; the partial message
    /// it belongs to, if any, is kept.
    pub fn push(&mut self, frame: Frame, now_ms: u64) -> Result<Option<Frame>, ReassemblyError> {
        let Some(pkg) = frame.header.package else {
            return Ok(Some(frame));
        };
        if !pkg.is_valid() {
            return Err(ReassemblyError::BadPackage(pkg));
        }
        self.expire(now_ms);
        let msg_id = frame.header.msg_id;
        let first_serial = frame.header.serial.wrapping_sub(pkg.index - 1);
        let key = (frame.header.phone, msg_id, first_serial);
        let len = frame.body.len();
        if self.bytes + len > self.config.max_bytes {
            return Err(ReassemblyError::TooManyBytes {
                max: self.config.max_bytes,
            });
        }
        if !self.partials.contains_key(&key) {
            if pkg.count == 1 {
                let mut header = frame.header;
                header.package = None;
                return Ok(Some(Frame {
                    header,
                    body: frame.body,
                }));
            }
            if self.partials.len() >= self.config.max_partials {
                return Err(ReassemblyError::TooManyPartials {
                    max: self.config.max_partials,
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
        }
        let Some(partial) = self.partials.get_mut(&key) else {
            return Ok(None); // inserted just above
        };
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
        if pkg.index == 1 {
            partial.first_header = Some(frame.header);
        }
        partial.parts.insert(pkg.index, frame.body);
        partial.bytes += len;
        self.bytes += len;
        if partial.parts.len() < usize::from(partial.count) {
            return Ok(None);
        }
        let Some(done) = self.partials.remove(&key) else {
            return Ok(None);
        };
        self.bytes -= done.bytes;
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
