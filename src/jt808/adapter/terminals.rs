//! Terminals and connections: which connection a terminal is bound to (only
//! the application's word that it authenticated binds it), and what happens
//! when either goes away.

use hashbrown::HashSet;

use super::super::codec::Phone;
use super::super::stream::StreamDecoder;
use super::requests::Outcome;
use super::{Adapter, AdapterCounter, ConnectionError, Event};

/// A terminal bound to a connection, or given a serial counter.
#[derive(Debug, Default)]
pub(super) struct Terminal {
    /// The serial its next 0x8900 gets, if free.
    pub(super) next_serial: u16,
    /// The 2019 protocol-version byte it last used.
    pub(super) protocol_version: Option<u8>,
    /// The connection it is bound to.
    pub(super) conn: Option<u64>,
    /// Ids of its requests, sent and queued.
    pub(super) requests: HashSet<u64>,
}

/// A connection the application feeds bytes from.
#[derive(Debug)]
pub(super) struct Connection {
    pub(super) decoder: StreamDecoder,
    /// Terminals whose `conn` is this connection.
    pub(super) phones: HashSet<Phone>,
}

impl Adapter {
    pub(super) fn terminal_entry(
        &mut self,
        phone: &Phone,
    ) -> Result<&mut Terminal, ConnectionError> {
        let max = self.config.max_terminals;
        let len = self.terminals.len();
        match self.terminals.entry(*phone) {
            hashbrown::hash_map::Entry::Occupied(o) => Ok(o.into_mut()),
            hashbrown::hash_map::Entry::Vacant(v) => {
                if len >= max {
                    return Err(ConnectionError::TooManyTerminals { max });
                }
                Ok(v.insert(Terminal::default()))
            }
        }
    }

    pub(super) fn connection_entry(
        &mut self,
        conn: u64,
    ) -> Result<&mut Connection, ConnectionError> {
        let max = self.config.max_connections;
        let len = self.connections.len();
        let max_frame = self.config.max_frame_len;
        let escapes = self.config.escapes;
        match self.connections.entry(conn) {
            hashbrown::hash_map::Entry::Occupied(o) => Ok(o.into_mut()),
            hashbrown::hash_map::Entry::Vacant(v) => {
                if len >= max {
                    return Err(ConnectionError::TooManyConnections { max });
                }
                Ok(v.insert(Connection {
                    decoder: StreamDecoder::with_escapes(max_frame, escapes),
                    phones: HashSet::new(),
                }))
            }
        }
    }

    /// Binds terminal `phone` to connection `conn`: from now on its 0x8900
    /// downlinks go to `conn`, and only the 0x0001 and 0x0900 frames that come
    /// on `conn` with its phone number complete its requests. Call it only once
    /// the terminal has proven who it is on `conn`: its authentication
    /// (0x0102) carried the code the application issued at its registration.
    /// Nothing else binds a terminal: a phone number in a frame's header is a
    /// claim anyone can make.
    ///
    /// A terminal bound to another connection is moved (a reconnect while the
    /// old socket is still half-open): its pending requests stay pending (their
    /// acks and answers are then taken from `conn`), its partial sub-packaged
    /// uplinks are dropped, and closing the old connection no longer affects
    /// it.
    ///
    /// # Errors
    /// [`ConnectionError`] when the terminal or the connection is new and its
    /// table is full; nothing changes then.
    pub fn terminal_authenticated(
        &mut self,
        phone: &Phone,
        conn: u64,
    ) -> Result<(), ConnectionError> {
        if !self.terminals.contains_key(phone) && self.terminals.len() >= self.config.max_terminals
        {
            return Err(ConnectionError::TooManyTerminals {
                max: self.config.max_terminals,
            });
        }
        self.connection_entry(conn)?;
        let t = self.terminal_entry(phone)?;
        if t.conn == Some(conn) {
            return Ok(());
        }
        let old = t.conn.replace(conn);
        self.stats.bump(AdapterCounter::bindings);
        if let Some(o) = old {
            self.stats.bump(AdapterCounter::rebinds);
            if let Some(c) = self.connections.get_mut(&o) {
                c.phones.remove(phone);
            }
            self.reassembler.forget(phone);
        }
        if let Some(c) = self.connections.get_mut(&conn) {
            c.phones.insert(*phone);
        }
        Ok(())
    }

    /// The connection is gone: its decoder is dropped, and every terminal whose
    /// connection it was is disconnected ([`Adapter::terminal_disconnected`]).
    /// Returns the requests answered.
    pub fn connection_closed(&mut self, conn: u64, now_ms: u64, events: &mut Vec<Event>) -> usize {
        let Some(c) = self.connections.remove(&conn) else {
            return 0;
        };
        self.stats
            .add(AdapterCounter::lenient_frames, c.decoder.lenient_frames());
        let mut n = 0;
        for phone in c.phones {
            if self.terminal_conn(&phone) == Some(conn) {
                n += self.terminal_disconnected(&phone, now_ms, events);
            }
        }
        n
    }

    /// The terminal went away: every request it has, sent or queued, is answered
    /// with `{"jt808":"error","reason":"terminal disconnected"}` (in submission
    /// order), and the terminal is forgotten (its serial counter starts again at
    /// 0). Returns the requests answered.
    pub fn terminal_disconnected(
        &mut self,
        phone: &Phone,
        now_ms: u64,
        events: &mut Vec<Event>,
    ) -> usize {
        // Its half-received uplinks will never be completed.
        self.reassembler.forget(phone);
        let Some(t) = self.terminals.remove(phone) else {
            return 0;
        };
        if let Some(c) = t.conn.and_then(|c| self.connections.get_mut(&c)) {
            c.phones.remove(phone);
        }
        let mut ids: Vec<u64> = t.requests.into_iter().collect();
        ids.sort_unstable();
        // Drop the terminal's Answer queues first, so that nothing queued goes out.
        for id in &ids {
            if let Some(e) = self.requests.get(id) {
                self.answer_queues.remove(&(e.phone, e.content_type));
            }
        }
        for &id in &ids {
            self.finish(id, Outcome::Disconnected, now_ms, events);
        }
        ids.len()
    }
}
