//! Presence on a plain broker: how a caller learns that a device is offline.
//!
//! Clouds know which devices are connected; a plain MQTT broker does not tell.
//! librrpc devices (with presence on) therefore announce themselves with retained
//! messages, and a last will reports their crash:
//!
//! | topic (defaults) | retained payload | published by |
//! |---|---|---|
//! | `rrpc/presence/{pk}/{dn}` | `online {connection}` | the device client, after every CONNACK |
//! | `rrpc/presence/{pk}/{dn}` | `offline` | the device client on a clean stop or device removal; the broker (last will) when the connection serves this one device and drops |
//! | `rrpc/connection/{connection}` | `online` / `offline` | the client after CONNACK / the broker (last will) when a connection that serves several devices drops |
//!
//! `{connection}` is `{user name}/{client id}` when the client logs in with a
//! user name, else `{client id}`.
//!
//! MQTT gives a connection one last will, so a connection serving one device puts
//! its will on that device's topic, and one serving several devices puts it on its
//! connection topic; each device's `online` payload names its connection, so a
//! caller can follow the link. A device is **offline** when its topic says
//! `offline`, or says `online {c}` while `rrpc/connection/{c}` says `offline`.
//! Both prefixes are configurable.
//!
//! **Who may say so.** Presence is believed exactly as far as the broker's ACLs
//! restrict who may publish it. Every topic above sits in a namespace of the
//! account that owns it: a device's status under its `{pk}/{dn}`, a
//! connection's under its user name. With the user name of a device account
//! being `{pk}/{dn}`, one pattern ACL per topic (`pattern write
//! rrpc/presence/%u`, `pattern write rrpc/connection/%u/+`) lets only that
//! device write its status, and only that account its connection's; the
//! template `docs/mosquitto-acl.conf` holds them. A device's `online` names the
//! connection to follow, so a stranger's `offline` on a connection topic of its
//! own account never reaches a device that does not name it. The layout of
//! earlier releases (`rrpc/connection/{client id}`, `online {client id}`) is
//! still read: it is the same layout without a user name.

use std::fmt;

use crate::dialect::{validate_part, IdentityError};

/// Default prefix of device status topics.
pub const DEFAULT_DEVICE_PREFIX: &str = "rrpc/presence";
/// Default prefix of connection status topics.
pub const DEFAULT_CONNECTION_PREFIX: &str = "rrpc/connection";

/// Where presence is published. Prefixes are topic levels without wildcards and
/// without a trailing `/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresenceTopics {
    pub device_prefix: String,
    pub connection_prefix: String,
}

impl Default for PresenceTopics {
    fn default() -> Self {
        PresenceTopics {
            device_prefix: DEFAULT_DEVICE_PREFIX.to_string(),
            connection_prefix: DEFAULT_CONNECTION_PREFIX.to_string(),
        }
    }
}

/// What a presence message says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Online, on the named connection (devices) or without one (connections).
    Online(Option<String>),
    Offline,
    /// An empty retained message: the status was cleared.
    Cleared,
}

/// A received presence message, taken apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Presence<'a> {
    Device {
        product_key: &'a str,
        device_name: &'a str,
        status: Status,
    },
    Connection {
        /// The connection as a device's `online` names it: `{user name}/{client
        /// id}`, or the client id alone.
        client_id: &'a str,
        status: Status,
    },
}

impl PresenceTopics {
    /// Checks the prefixes: non-empty, no wildcards, NUL or control characters,
    /// no leading or trailing `/`, and neither is the other or begins its levels.
    pub fn validate(&self) -> Result<(), IdentityError> {
        for (field, p) in [
            ("presence device prefix", &self.device_prefix),
            ("presence connection prefix", &self.connection_prefix),
        ] {
            if p.is_empty() || p.starts_with('/') || p.ends_with('/') {
                return Err(IdentityError {
                    field,
                    reason: "must be one or more topic levels without a leading or trailing '/'",
                });
            }
            for level in p.split('/') {
                validate_part(field, level)?;
            }
        }
        let (d, c) = (&self.device_prefix, &self.connection_prefix);
        if d == c || strip_level_prefix(d, c).is_some() || strip_level_prefix(c, d).is_some() {
            return Err(IdentityError {
                field: "presence connection prefix",
                reason:
                    "must differ from the device prefix, and neither may be levels of the other",
            });
        }
        Ok(())
    }

    pub fn device_topic(&self, product_key: &str, device_name: &str) -> String {
        format!("{}/{product_key}/{device_name}", self.device_prefix)
    }

    /// The status topic of `connection` (see [`connection_name`]).
    pub fn connection_topic(&self, connection: &str) -> String {
        format!("{}/{connection}", self.connection_prefix)
    }

    /// The filters a caller subscribes to follow every device and connection.
    pub fn filters(&self) -> [String; 2] {
        [
            format!("{}/+/+", self.device_prefix),
            format!("{}/#", self.connection_prefix),
        ]
    }

    /// Takes a received message apart; `None` when it is not a presence message
    /// of these prefixes or its payload is not one of the documented ones.
    pub fn parse<'a>(&self, topic: &'a str, payload: &[u8]) -> Option<Presence<'a>> {
        let status = parse_status(payload)?;
        if let Some(rest) = strip_level_prefix(topic, &self.device_prefix) {
            let (pk, dn) = rest.split_once('/')?;
            if pk.is_empty() || dn.is_empty() || dn.contains('/') {
                return None;
            }
            return Some(Presence::Device {
                product_key: pk,
                device_name: dn,
                status,
            });
        }
        if let Some(cid) = strip_level_prefix(topic, &self.connection_prefix) {
            if cid.split('/').any(str::is_empty) {
                return None;
            }
            return Some(Presence::Connection {
                client_id: cid,
                status,
            });
        }
        None
    }
}

fn strip_level_prefix<'a>(topic: &'a str, prefix: &str) -> Option<&'a str> {
    topic.strip_prefix(prefix)?.strip_prefix('/')
}

/// How a connection is named in presence: `{user name}/{client id}` when the
/// connection logs in with a user name, so that its status topic lies in the
/// namespace of the account (a pattern ACL `rrpc/connection/%u/+` lets no other
/// account write it), else the client id alone.
pub fn connection_name(user_name: Option<&str>, client_id: &str) -> String {
    match user_name {
        Some(u) if !u.is_empty() => format!("{u}/{client_id}"),
        _ => client_id.to_string(),
    }
}

/// The payload of a device's `online` message: `online {connection}` (see
/// [`connection_name`]).
pub fn online_payload(connection: &str) -> String {
    format!("online {connection}")
}

pub const OFFLINE: &[u8] = b"offline";
pub const ONLINE: &[u8] = b"online";

fn parse_status(payload: &[u8]) -> Option<Status> {
    if payload.is_empty() {
        return Some(Status::Cleared);
    }
    let text = std::str::from_utf8(payload).ok()?.trim();
    if text == "offline" {
        return Some(Status::Offline);
    }
    match text.strip_prefix("online") {
        Some("") => Some(Status::Online(None)),
        Some(rest) if rest.starts_with(' ') => Some(Status::Online(Some(rest.trim().to_string()))),
        _ => None,
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Online(Some(c)) => write!(f, "online {c}"),
            Status::Online(None) => f.write_str("online"),
            Status::Offline => f.write_str("offline"),
            Status::Cleared => f.write_str("(cleared)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_and_payloads() {
        let p = PresenceTopics::default();
        p.validate().unwrap();
        assert_eq!(p.device_topic("a1B2", "dev1"), "rrpc/presence/a1B2/dev1");
        assert_eq!(p.connection_topic("rrpc0123"), "rrpc/connection/rrpc0123");
        assert_eq!(
            p.filters(),
            [
                "rrpc/presence/+/+".to_string(),
                "rrpc/connection/#".to_string()
            ]
        );
        assert_eq!(
            p.parse("rrpc/presence/a1B2/dev1", online_payload("c1").as_bytes()),
            Some(Presence::Device {
                product_key: "a1B2",
                device_name: "dev1",
                status: Status::Online(Some("c1".into()))
            })
        );
        assert_eq!(
            p.parse("rrpc/presence/a1B2/dev1", b"offline"),
            Some(Presence::Device {
                product_key: "a1B2",
                device_name: "dev1",
                status: Status::Offline
            })
        );
        assert_eq!(
            p.parse("rrpc/connection/c1", b"offline"),
            Some(Presence::Connection {
                client_id: "c1",
                status: Status::Offline
            })
        );
        assert_eq!(
            p.parse("rrpc/connection/c1", b""),
            Some(Presence::Connection {
                client_id: "c1",
                status: Status::Cleared
            })
        );
        // A connection named by its account: the status topic lies under the
        // user name, the device's `online` names the whole path.
        let conn = connection_name(Some("a1B2/gw1"), "rrpc0123");
        assert_eq!(conn, "a1B2/gw1/rrpc0123");
        assert_eq!(
            p.connection_topic(&conn),
            "rrpc/connection/a1B2/gw1/rrpc0123"
        );
        assert_eq!(connection_name(None, "rrpc0123"), "rrpc0123");
        assert_eq!(connection_name(Some(""), "rrpc0123"), "rrpc0123");
        assert_eq!(
            p.parse("rrpc/connection/a1B2/gw1/rrpc0123", b"offline"),
            Some(Presence::Connection {
                client_id: "a1B2/gw1/rrpc0123",
                status: Status::Offline
            })
        );
        assert_eq!(
            p.parse("rrpc/presence/a1B2/dev1", online_payload(&conn).as_bytes()),
            Some(Presence::Device {
                product_key: "a1B2",
                device_name: "dev1",
                status: Status::Online(Some(conn.clone()))
            })
        );
        assert_eq!(p.parse("rrpc/connection/a//c", b"offline"), None);
        assert_eq!(p.parse("rrpc/connection/a/", b"offline"), None);
        assert_eq!(p.parse("rrpc/presence/a1B2/dev1", b"maybe"), None);
        assert_eq!(p.parse("rrpc/presence/a1B2", b"online"), None);
        assert_eq!(p.parse("rrpc/presence/a/b/c", b"online"), None);
        assert_eq!(p.parse("/sys/a/b/rrpc/response/1", b"online"), None);
        assert_eq!(p.parse("rrpc/presencex/a/b", b"online"), None);
    }

    #[test]
    fn prefixes_are_validated() {
        for (d, c) in [
            ("", "x"),
            ("a/+", "x"),
            ("/a", "x"),
            ("a/", "x"),
            ("same", "same"),
            ("a//b", "x"),
            ("a/b", "a"),
            ("a", "a/b"),
        ] {
            let p = PresenceTopics {
                device_prefix: d.into(),
                connection_prefix: c.into(),
            };
            assert!(p.validate().is_err(), "{d:?} {c:?}");
        }
        let p = PresenceTopics {
            device_prefix: "fleet/status".into(),
            connection_prefix: "fleet/conn".into(),
        };
        p.validate().unwrap();
        assert_eq!(p.device_topic("pk", "dn"), "fleet/status/pk/dn");
    }
}
