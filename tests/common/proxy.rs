//! A fault-injection TCP proxy on loopback, between a client and a broker.
//!
//! [`Proxy::start`] listens on a free 127.0.0.1 port and forwards every
//! connection to the upstream address, one thread per direction. On command,
//! for one connection ([`Target::Conn`]) or all of them ([`Target::All`]), it
//! - **drops** a connection (closes both sockets: the peers see FIN),
//! - **resets** it (SO_LINGER 0, then close: the peers see RST),
//! - **truncates** it (forwards only the first bytes of the next chunk from the
//!   broker, cutting an MQTT packet in the middle, then closes),
//! - **black-holes** it (stops forwarding in both directions, closes nothing:
//!   what the peers send piles up unread, as behind a dead NAT or a cut link),
//!   until [`Proxy::heal`],
//! - **delays** everything it forwards by a fixed time ([`Proxy::set_delay`]),
//!
//! and [`Proxy::refuse_for`] makes it refuse new connections for a while (each is
//! accepted and reset at once). Only loopback addresses are ever connected to.
//! Dropping the proxy closes everything it holds.
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::io::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often a forwarding thread looks at its connection's commands while its
/// socket is quiet.
const POLL: Duration = Duration::from_millis(10);

/// Which connections a command applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Every connection open now.
    All,
    /// One connection, by the id [`Proxy::connections`] lists (ids count from 1
    /// in accept order).
    Conn(u64),
}

/// What happens to a connection at its next poll.
const RUN: usize = 0;
const CLOSE: usize = 1;
const RESET: usize = 2;

struct Conn {
    id: u64,
    client: TcpStream,
    upstream: TcpStream,
    /// RUN, CLOSE or RESET.
    action: AtomicUsize,
    /// Not forwarding client-to-broker ([0]) or broker-to-client ([1]).
    held: [AtomicBool; 2],
    /// Forward at most this many bytes of the next broker-to-client chunk, then
    /// close (0: no truncation pending).
    truncate_at: AtomicUsize,
    /// Bytes forwarded client-to-broker ([0]) and broker-to-client ([1]).
    forwarded: [AtomicU64; 2],
}

impl Conn {
    fn kill(&self, how: usize) {
        if how == RESET {
            set_linger_zero(&self.client);
            set_linger_zero(&self.upstream);
        }
        self.action.store(how, Ordering::SeqCst);
        if how == CLOSE {
            let _ = self.client.shutdown(Shutdown::Both);
            let _ = self.upstream.shutdown(Shutdown::Both);
        }
    }
}

struct Shared {
    upstream: SocketAddr,
    conns: Mutex<Vec<Weak<Conn>>>,
    next_id: AtomicU64,
    /// Delay before each forwarded chunk, in ms (all connections).
    delay_ms: AtomicU64,
    refuse_until: Mutex<Option<Instant>>,
    refused: AtomicU64,
    stop: AtomicBool,
}

/// The proxy; see the module documentation.
pub struct Proxy {
    pub port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Starts forwarding 127.0.0.1:`port` (a free one) to 127.0.0.1:`upstream_port`.
    pub fn start(upstream_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        listener.set_nonblocking(true).expect("non-blocking accept");
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            upstream: ([127, 0, 0, 1], upstream_port).into(),
            conns: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            delay_ms: AtomicU64::new(0),
            refuse_until: Mutex::new(None),
            refused: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        let acceptor = std::thread::Builder::new()
            .name(format!("proxy-{port}"))
            .spawn(move || accept_loop(listener, s))
            .expect("spawn the proxy");
        Proxy {
            port,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// Ids of the connections open now, oldest first.
    pub fn connections(&self) -> Vec<u64> {
        self.live().iter().map(|c| c.id).collect()
    }

    /// Connections accepted and forwarded so far (refused ones not counted).
    pub fn accepted(&self) -> u64 {
        self.shared.next_id.load(Ordering::SeqCst) - 1
    }

    /// Connections refused by [`Proxy::refuse_for`] so far.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::SeqCst)
    }

    /// Waits until `n` connections are open; false on timeout.
    pub fn wait_connections(&self, n: usize, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.live().len() >= n {
                return true;
            }
            std::thread::sleep(POLL);
        }
        false
    }

    /// Waits until a connection with an id above `after` is open (a reconnect);
    /// returns its id.
    pub fn wait_new_connection(&self, after: u64, timeout: Duration) -> Option<u64> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Some(id) = self.connections().into_iter().find(|&id| id > after) {
                return Some(id);
            }
            std::thread::sleep(POLL);
        }
        None
    }

    /// The id of the newest connection accepted so far (0: none yet).
    pub fn last_id(&self) -> u64 {
        self.accepted()
    }

    /// Closes the connections (FIN to both peers).
    pub fn drop_conn(&self, t: Target) {
        self.each(t, |c| c.kill(CLOSE));
    }

    /// Resets the connections (RST to both peers).
    pub fn reset(&self, t: Target) {
        self.each(t, |c| c.kill(RESET));
    }

    /// Forwards only the first `bytes` (at least 1) of the next chunk the broker
    /// sends on each connection, then closes it.
    pub fn truncate(&self, t: Target, bytes: usize) {
        self.each(t, |c| c.truncate_at.store(bytes.max(1), Ordering::SeqCst));
    }

    /// Stops forwarding in both directions without closing anything.
    pub fn blackhole(&self, t: Target) {
        self.each(t, |c| {
            c.held.iter().for_each(|h| h.store(true, Ordering::SeqCst))
        });
    }

    /// Stops forwarding from the client to the broker only (the broker's
    /// packets still arrive; the client's acknowledgements and replies do not).
    pub fn hold_upstream(&self, t: Target) {
        self.each(t, |c| c.held[0].store(true, Ordering::SeqCst));
    }

    /// Forwards again, both ways, what a black hole held back (and anything new).
    pub fn heal(&self, t: Target) {
        self.each(t, |c| {
            c.held.iter().for_each(|h| h.store(false, Ordering::SeqCst))
        });
    }

    /// Bytes forwarded from the broker to the client on connection `id` (0 when
    /// it is closed).
    pub fn forwarded_to_client(&self, id: u64) -> u64 {
        self.live()
            .iter()
            .find(|c| c.id == id)
            .map_or(0, |c| c.forwarded[1].load(Ordering::SeqCst))
    }

    /// Delays every chunk forwarded from now on, on every connection (0: none).
    pub fn set_delay(&self, d: Duration) {
        self.shared
            .delay_ms
            .store(d.as_millis() as u64, Ordering::SeqCst);
    }

    /// Refuses (accepts and resets at once) every new connection for `d`.
    pub fn refuse_for(&self, d: Duration) {
        *self.shared.refuse_until.lock().unwrap() = Some(Instant::now() + d);
    }

    fn live(&self) -> Vec<Arc<Conn>> {
        let mut conns = self.shared.conns.lock().unwrap();
        conns.retain(|w| w.strong_count() > 0);
        conns
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|c| c.action.load(Ordering::SeqCst) == RUN)
            .collect()
    }

    fn each(&self, t: Target, f: impl Fn(&Conn)) {
        for c in self.live() {
            if t == Target::All || t == Target::Conn(c.id) {
                f(&c);
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.drop_conn(Target::All);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

fn set_linger_zero(s: &TcpStream) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on a socket we own, with a correctly sized linger struct.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

fn accept_loop(listener: TcpListener, s: Arc<Shared>) {
    while !s.stop.load(Ordering::SeqCst) {
        let client = match listener.accept() {
            Ok((c, _)) => c,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            Err(_) => continue,
        };
        let refusing = s
            .refuse_until
            .lock()
            .unwrap()
            .is_some_and(|t| Instant::now() < t);
        if refusing {
            set_linger_zero(&client);
            s.refused.fetch_add(1, Ordering::SeqCst);
            drop(client);
            continue;
        }
        let upstream = match TcpStream::connect_timeout(&s.upstream, Duration::from_secs(2)) {
            Ok(u) => u,
            Err(_) => {
                // Nothing upstream (a broker being restarted): the client sees RST.
                set_linger_zero(&client);
                continue;
            }
        };
        let _ = client.set_nonblocking(false);
        for sock in [&client, &upstream] {
            let _ = sock.set_nodelay(true);
            let _ = sock.set_read_timeout(Some(POLL));
        }
        let conn = Arc::new(Conn {
            id: s.next_id.fetch_add(1, Ordering::SeqCst),
            client,
            upstream,
            action: AtomicUsize::new(RUN),
            held: [AtomicBool::new(false), AtomicBool::new(false)],
            truncate_at: AtomicUsize::new(0),
            forwarded: [AtomicU64::new(0), AtomicU64::new(0)],
        });
        s.conns.lock().unwrap().push(Arc::downgrade(&conn));
        for to_client in [false, true] {
            let (c, sh) = (conn.clone(), s.clone());
            std::thread::Builder::new()
                .name(format!("proxy-conn-{}", conn.id))
                .spawn(move || pump(&c, &sh, to_client))
                .expect("spawn a proxy pump");
        }
    }
}

/// Forwards one direction of `c` until either side closes or a command ends it.
/// The last pump to drop its handle closes the sockets (with RST after a reset).
fn pump(c: &Conn, s: &Shared, to_client: bool) {
    let (mut from, mut to) = if to_client {
        (&c.upstream, &c.client)
    } else {
        (&c.client, &c.upstream)
    };
    let mut buf = vec![0u8; 64 * 1024];
    let end = |c: &Conn| {
        // The other direction stops at its next poll; shutting down wakes it now.
        if c.action.load(Ordering::SeqCst) == RUN {
            c.kill(CLOSE);
        }
    };
    loop {
        if c.action.load(Ordering::SeqCst) != RUN || s.stop.load(Ordering::SeqCst) {
            return;
        }
        let held = &c.held[usize::from(to_client)];
        if held.load(Ordering::SeqCst) {
            std::thread::sleep(POLL);
            continue;
        }
        let n = match from.read(&mut buf) {
            Ok(0) => return end(c),
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return end(c),
        };
        let delay = s.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            std::thread::sleep(Duration::from_millis(delay));
        }
        // A black hole that started while this chunk was in hand swallows it.
        if held.load(Ordering::SeqCst) || c.action.load(Ordering::SeqCst) != RUN {
            continue;
        }
        let cut = if to_client {
            c.truncate_at.swap(0, Ordering::SeqCst)
        } else {
            0
        };
        let n = if cut > 0 {
            cut.min(n.saturating_sub(1).max(1))
        } else {
            n
        };
        if to.write_all(&buf[..n]).is_err() {
            return end(c);
        }
        c.forwarded[usize::from(to_client)].fetch_add(n as u64, Ordering::SeqCst);
        if cut > 0 {
            return end(c);
        }
    }
}
