//! Frames from terminals: bytes from a connection through its decoder, and
//! each frame to the request it completes, or back to the application.

use super::super::codec::{
    Body, Frame, Header, Version, MSG_DOWNLINK_PASSTHROUGH, MSG_TERMINAL_RESPONSE,
    MSG_UPLINK_PASSTHROUGH,
};
use super::{Adapter, AdapterCounter, ConnectionError, Event, FrameError, Handled};

impl Adapter {
    /// Takes one frame a terminal sent on connection `conn`, decoded by the
    /// application. 0x0001 answering 0x8900 and 0x0900 are the adapter's when
    /// the frame's terminal is bound to `conn`
    /// ([`Adapter::terminal_authenticated`]); from any other connection they
    /// complete nothing ([`Handled::Unauthenticated`]). Everything else is
    /// [`Handled::NotMine`]. Replies, expiries of matched requests and
    /// unmatched uplinks are appended to `events`.
    pub fn on_frame(
        &mut self,
        conn: u64,
        frame: &Frame,
        now_ms: u64,
        events: &mut Vec<Event>,
    ) -> Handled {
        let bound = self.terminal_conn(&frame.header.phone) == Some(conn);
        if bound {
            self.note_version(&frame.header);
        }
        if !self.is_adapters(frame) {
            self.stats.bump(AdapterCounter::other_frames);
            return Handled::NotMine;
        }
        if !bound {
            self.stats.bump(AdapterCounter::unauthenticated);
            return Handled::Unauthenticated;
        }
        self.dispatch(frame, now_ms, events)
    }

    /// Whether the frame is of a kind the adapter takes: a 0x0900, or a 0x0001
    /// answering 0x8900 (a 0x0001 whose body is too short to say counts too,
    /// so that it is reported as dropped).
    fn is_adapters(&self, frame: &Frame) -> bool {
        match frame.header.msg_id {
            MSG_UPLINK_PASSTHROUGH => true,
            MSG_TERMINAL_RESPONSE => !matches!(
                Body::parse(MSG_TERMINAL_RESPONSE, &frame.body),
                Ok(Body::GeneralResponse { reply_id, .. }) if reply_id != MSG_DOWNLINK_PASSTHROUGH
            ),
            _ => false,
        }
    }

    fn dispatch(&mut self, frame: &Frame, now_ms: u64, events: &mut Vec<Event>) -> Handled {
        let phone = frame.header.phone;
        match frame.header.msg_id {
            MSG_TERMINAL_RESPONSE => match Body::parse(MSG_TERMINAL_RESPONSE, &frame.body) {
                Ok(Body::GeneralResponse {
                    reply_serial,
                    reply_id,
                    result,
                }) => {
                    if reply_id != MSG_DOWNLINK_PASSTHROUGH {
                        return Handled::NotMine;
                    }
                    self.on_ack(phone, reply_serial, result, now_ms, events);
                    Handled::Taken
                }
                Ok(_) => Handled::NotMine,
                Err(e) => {
                    self.stats.bump(AdapterCounter::bad_bodies);
                    Handled::Dropped(FrameError::Body(e))
                }
            },
            MSG_UPLINK_PASSTHROUGH => {
                if frame.header.package.is_some() {
                    match self.reassembler.push(frame.clone(), now_ms) {
                        Ok(None) => Handled::Taken,
                        Ok(Some(whole)) => self.uplink_body(&whole, now_ms, events),
                        Err(e) => {
                            self.stats.bump(AdapterCounter::reassembly_errors);
                            Handled::Dropped(FrameError::Reassembly(e))
                        }
                    }
                } else {
                    self.uplink_body(frame, now_ms, events)
                }
            }
            _ => Handled::NotMine,
        }
    }

    fn uplink_body(&mut self, frame: &Frame, now_ms: u64, events: &mut Vec<Event>) -> Handled {
        match Body::parse(MSG_UPLINK_PASSTHROUGH, &frame.body) {
            Ok(Body::Passthrough {
                content_type,
                content,
            }) => {
                self.on_uplink(frame.header.phone, content_type, content, now_ms, events);
                Handled::Taken
            }
            Ok(_) => Handled::NotMine,
            Err(e) => {
                self.stats.bump(AdapterCounter::bad_bodies);
                Handled::Dropped(FrameError::Body(e))
            }
        }
    }

    /// Records the protocol version of a bound terminal's frames: outgoing
    /// 2019 frames use the one it last used.
    fn note_version(&mut self, header: &Header) {
        if header.version != Version::V2019 {
            return;
        }
        if let Some(t) = self.terminals.get_mut(&header.phone) {
            t.protocol_version = Some(header.protocol_version);
        }
    }

    /// Takes bytes received on connection `conn` (any chunking). Each complete
    /// frame is decoded and handled as by [`Adapter::on_frame`]; frames that are
    /// not the adapter's, and the adapter's kinds from a terminal not bound to
    /// `conn` ([`Handled::Unauthenticated`]), come back as [`Event::Frame`],
    /// undecodable ones as [`Event::Malformed`]. No frame binds its terminal to
    /// `conn`: only [`Adapter::terminal_authenticated`] does.
    ///
    /// # Errors
    /// [`ConnectionError::TooManyConnections`] for a new connection when the
    /// table is full; the bytes are dropped.
    pub fn on_bytes(
        &mut self,
        conn: u64,
        bytes: &[u8],
        now_ms: u64,
        events: &mut Vec<Event>,
    ) -> Result<(), ConnectionError> {
        let c = self.connection_entry(conn)?;
        c.decoder.push(bytes);
        loop {
            let Some(c) = self.connections.get_mut(&conn) else {
                return Ok(());
            };
            let Some(result) = c.decoder.next_frame() else {
                return Ok(());
            };
            match result {
                Ok(frame) => match self.on_frame(conn, &frame, now_ms, events) {
                    Handled::Taken => {}
                    Handled::NotMine | Handled::Unauthenticated => {
                        events.push(Event::Frame { conn, frame })
                    }
                    Handled::Dropped(e) => events.push(Event::Malformed {
                        conn,
                        reason: format!(
                            "0x{:04x} from terminal {}: {e}",
                            frame.header.msg_id, frame.header.phone
                        ),
                    }),
                },
                Err(e) => {
                    self.stats.bump(AdapterCounter::malformed);
                    events.push(Event::Malformed {
                        conn,
                        reason: e.to_string(),
                    });
                }
            }
        }
    }
}
