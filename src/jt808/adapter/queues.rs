//! The queue of Answer requests per (terminal, type), and the serial numbers
//! of outgoing 0x8900 messages: how a request's frames are made and sent.

use std::collections::VecDeque;

use super::super::codec::{EncodeError, Header, Phone, Version, MSG_DOWNLINK_PASSTHROUGH};
use super::super::packets::split_passthrough;
use super::requests::{Outcome, RequestState};
use super::{Adapter, AdapterCounter, ErrorReason, Event, SubmitError};

/// The outstanding Answer request of a (terminal, type), and those waiting
/// behind it (ids, in submission order).
#[derive(Debug)]
pub(super) struct AnswerQueue {
    pub(super) outstanding: u64,
    pub(super) waiting: VecDeque<u64>,
}

impl Adapter {
    /// The outstanding request of the (terminal, type) `key` finished: the
    /// next live queued request goes out, or the queue is dropped.
    pub(super) fn advance_queue(&mut self, key: (Phone, u8), now_ms: u64, events: &mut Vec<Event>) {
        loop {
            let Some(queue) = self.answer_queues.get_mut(&key) else {
                return;
            };
            let Some(next) = queue.waiting.pop_front() else {
                self.answer_queues.remove(&key);
                return;
            };
            let Some(entry) = self.requests.get(&next) else {
                continue;
            };
            if entry.deadline_ms <= now_ms {
                self.finish(next, Outcome::Expired, now_ms, events);
                continue;
            }
            let RequestState::Queued { content } = &entry.state else {
                continue;
            };
            let content = content.clone();
            let (token, phone, content_type) = (entry.token, entry.phone, entry.content_type);
            let mut frames = Vec::new();
            match self.send_frames(&phone, content_type, &content, &mut frames) {
                Ok((serial, packets)) => {
                    if let Some(e) = self.requests.get_mut(&next) {
                        e.state = RequestState::Sent { serial, packets };
                    }
                    self.queued_bytes = self.queued_bytes.saturating_sub(content.len());
                    self.queued_now = self.queued_now.saturating_sub(1);
                    self.index_serials(&phone, serial, packets, next);
                    if let Some(queue) = self.answer_queues.get_mut(&key) {
                        queue.outstanding = next;
                    }
                    events.push(Event::SendQueued {
                        token,
                        phone,
                        serial,
                        frames,
                    });
                    return;
                }
                Err(_) => {
                    self.finish(next, Outcome::SendFailed(ErrorReason::Busy), now_ms, events);
                }
            }
        }
    }

    pub(super) fn index_serials(&mut self, phone: &Phone, serial: u16, packets: u16, id: u64) {
        for k in 0..packets {
            self.serials.insert((*phone, serial.wrapping_add(k)), id);
        }
    }

    /// Packets a content needs: as `split_passthrough` counts them.
    pub(super) fn packets_for(&self, content_len: usize) -> usize {
        let total = content_len.saturating_add(1);
        if total <= self.config.max_body {
            1
        } else {
            total.div_ceil(self.config.max_body)
        }
    }

    /// The first of `count` consecutive serials, from the terminal's counter on,
    /// none held by a pending request of the terminal.
    pub(super) fn free_serials(&self, phone: &Phone, start: u16, count: usize) -> Option<u16> {
        if count == 0 || count > 65536 {
            return None;
        }
        let mut s = start;
        let mut scanned = 0usize;
        while scanned < 65536 {
            let clash = (0..count).find(|&k| {
                self.serials
                    .contains_key(&(*phone, s.wrapping_add(k as u16)))
            });
            match clash {
                None => return Some(s),
                Some(k) => {
                    s = s.wrapping_add(k as u16).wrapping_add(1);
                    scanned += k + 1;
                }
            }
        }
        None
    }

    /// Encodes the 0x8900 message for the terminal with fresh serials and
    /// appends it to `out`; advances the terminal's counter.
    pub(super) fn send_frames(
        &mut self,
        phone: &Phone,
        content_type: u8,
        content: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(u16, u16), SubmitError> {
        let count = self.packets_for(content.len());
        if count > usize::from(u16::MAX) {
            return Err(SubmitError::Encode(EncodeError::TooManyPackets(count)));
        }
        let (start, protocol_version) = match self.terminals.get(phone) {
            Some(t) => (t.next_serial, t.protocol_version),
            None => (0, None),
        };
        let serial =
            self.free_serials(phone, start, count)
                .ok_or(SubmitError::SerialsExhausted {
                    phone: *phone,
                    packets: count,
                })?;
        let mut header = Header::new(MSG_DOWNLINK_PASSTHROUGH, *phone, serial);
        if header.version == Version::V2019 {
            if let Some(v) = protocol_version {
                header.protocol_version = v;
            }
        }
        let frames = split_passthrough(&header, content_type, content, self.config.max_body)
            .map_err(SubmitError::Encode)?;
        if frames.len() != count {
            return Err(SubmitError::Encode(EncodeError::TooManyPackets(
                frames.len(),
            )));
        }
        let packets = count as u16;
        out.reserve(frames.iter().map(Vec::len).sum());
        for f in &frames {
            out.extend_from_slice(f);
        }
        if let Some(t) = self.terminals.get_mut(phone) {
            t.next_serial = serial.wrapping_add(packets);
        }
        self.stats.bump(AdapterCounter::sent);
        self.stats
            .add(AdapterCounter::packets_sent, u64::from(packets));
        Ok((serial, packets))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jt808::AdapterConfig;

    fn phone(d: &str) -> Phone {
        Phone::from_digits(d, Version::V2013).unwrap()
    }

    #[test]
    fn serial_search_skips_held_runs() {
        let mut a = Adapter::new(AdapterConfig::default()).unwrap();
        let p = phone("1");
        a.set_next_serial(&p, 65534).unwrap();
        a.serials.insert((p, 65535), 99);
        a.serials.insert((p, 1), 99);
        // A 3-serial run cannot start at 65534 (65535 held) nor at 0 (1 held).
        assert_eq!(a.free_serials(&p, 65534, 3), Some(2));
        assert_eq!(a.free_serials(&p, 65534, 1), Some(65534));
        for s in 0..=u16::MAX {
            a.serials.insert((p, s), 99);
        }
        assert_eq!(a.free_serials(&p, 0, 1), None);
    }
}
