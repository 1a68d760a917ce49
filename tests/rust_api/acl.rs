//! The trust model through a real Mosquitto: the ACL template shipped in
//! `docs/mosquitto-acl.conf`, a password file, a device and a caller on the
//! library, and a foreign client logged in as another device that tries to fake
//! presence, answer a call of the device, and read its requests.

use std::process::Command;
use std::time::Duration;

use rrpc::caller::{CallParams, Caller, CallerConfig, RrpcCode};
use rrpc::presence::PresenceTopics;
use rrpc::{Client, ClientConfig, Dialect, Identity};

use crate::common;
use crate::common::device;
use crate::common::mqtt::{self, MqttClient};
use crate::common::{require_tool, scratch_dir, Broker};

const PK: &str = "a1AclPk";
const CALLER: &str = "rrpc-caller";
const TEN_S: Duration = Duration::from_secs(10);

/// Mosquitto with the shipped ACL template and one account per name in `users`
/// (password: the name reversed).
fn broker(users: &[&str]) -> Broker {
    require_tool("mosquitto_passwd");
    let dir = scratch_dir("acl");
    let tag = format!("{}-{}", std::process::id(), common::free_port());
    let pwfile = dir.join(format!("passwd-{tag}"));
    let _ = std::fs::remove_file(&pwfile);
    for (i, u) in users.iter().enumerate() {
        let mut cmd = Command::new("mosquitto_passwd");
        cmd.arg("-b");
        if i == 0 {
            cmd.arg("-c");
        }
        let st = cmd
            .arg(&pwfile)
            .args([u.to_string(), password(u)])
            .status()
            .expect("run mosquitto_passwd");
        assert!(st.success(), "mosquitto_passwd {u}");
    }
    // The template, materialised as an operator would: copied as it ships.
    let template = common::repo_root().join("docs/mosquitto-acl.conf");
    let acl = dir.join(format!("acl-{tag}"));
    std::fs::copy(&template, &acl).expect("copy the ACL template");
    Broker::mosquitto_with(&format!(
        "allow_anonymous false\npassword_file {}\nacl_file {}\n",
        pwfile.display(),
        acl.display()
    ))
}

fn password(user: &str) -> String {
    user.chars().rev().collect()
}

fn ident(dn: &str) -> Identity<'_> {
    Identity {
        product_key: PK,
        device_name: dn,
        custom_topic: None,
    }
}

/// A device `dn` on the library, logged in as `{PK}/{dn}`, presence on:
/// echoes, but never answers the payload "mute".
fn device(port: u16, dn: &str) -> Client {
    device_as(port, &format!("{PK}/{dn}"), dn)
}

/// [`device`], logged in as `user`.
fn device_as(port: u16, user: &str, dn: &str) -> Client {
    let mut cfg = ClientConfig::new("127.0.0.1", port);
    cfg.mqtt.client_id = Some(format!("conn-{dn}"));
    cfg.mqtt.password = Some(password(user));
    cfg.mqtt.username = Some(user.to_string());
    cfg.presence = Some(PresenceTopics::default());
    let c = Client::new(cfg).unwrap();
    c.add_device(Dialect::AlibabaSystem, &ident(dn)).unwrap();
    let r = c.replier();
    c.set_handler(Some(Box::new(move |req: &rrpc::Request<'_>| {
        if req.payload != b"mute" {
            let _ = r.reply(req.token, req.payload);
        }
    })))
    .unwrap();
    c.start().unwrap();
    c
}

fn caller(port: u16) -> Caller {
    let mut cfg = CallerConfig::new("127.0.0.1", port);
    cfg.mqtt.username = Some(CALLER.into());
    cfg.mqtt.password = Some(password(CALLER));
    Caller::connect(cfg).expect("the caller connects")
}

fn params<'a>(dn: &'a str, payload: &'a [u8]) -> CallParams<'a> {
    device::system_call(PK, dn, payload, 2000)
}

/// A raw MQTT client logged in as `user`.
fn raw(port: u16, user: &str) -> MqttClient {
    let mut o = mqtt::options(port, &format!("raw-{}", user.replace('/', "-")));
    o.set_credentials(user, password(user));
    MqttClient::connect_with(o)
}

fn under_the_acl_template_a_foreign_account_cannot_fake_presence_answer_or_read() {
    let dev1 = format!("{PK}/dev1");
    let dev2 = format!("{PK}/dev2");
    let b = broker(&[&dev1, &dev2, CALLER]);
    // The device and the caller work under the ACL.
    let _d = device(b.port, "dev1");
    let c = caller(b.port);
    common::wait_until("dev1 online", Duration::from_secs(10), || {
        c.device_online(PK, "dev1") == Some(true)
    });
    let r = c.call(&params("dev1", b"hello"));
    assert_eq!(r.rrpc_code, Some(RrpcCode::Success), "{r:?}");
    assert_eq!(r.payload.as_deref(), Some(&b"hello"[..]));

    // A foreign client, logged in as another device, subscribes everything.
    let foe = raw(b.port, &dev2);
    for f in ["#", "$rrpc/#", "/sys/a1AclPk/dev1/rrpc/request/+"] {
        foe.subscribe(f);
    }

    // Faking presence: `offline` on the device's status and on its connection's,
    // in today's layout and in the earlier one, retained and not.
    let fakes = [
        format!("rrpc/presence/{dev1}"),
        format!("rrpc/connection/{dev1}/conn-dev1"),
        "rrpc/connection/conn-dev1".to_string(),
    ];
    for t in &fakes {
        foe.publish(t, b"offline", true);
        foe.publish(t, b"offline", false);
    }
    // Control, on the same connection after the fakes: its own status is
    // allowed, and the caller sees it, so the fakes before it were handled.
    foe.publish(&format!("rrpc/presence/{dev2}"), b"offline", true);
    common::wait_until(
        "the foreign account's own status",
        Duration::from_secs(10),
        || c.device_online(PK, "dev2") == Some(false),
    );
    assert_eq!(c.device_online(PK, "dev1"), Some(true));
    let r = c.call(&params("dev1", b"after the fakes"));
    assert_eq!(r.rrpc_code, Some(RrpcCode::Success), "{r:?}");

    // Answering another device's call: a caller-side client that knows the
    // message id (the foreign client would have to guess it) sends a request
    // the device leaves unanswered; the foreign answer never reaches it.
    let cloud = raw(b.port, CALLER);
    cloud.subscribe("/sys/+/+/rrpc/response/+");
    cloud.publish("/sys/a1AclPk/dev1/rrpc/request/9001", b"mute", false);
    foe.publish("/sys/a1AclPk/dev1/rrpc/response/9001", b"forged", false);
    foe.publish("/sys/a1AclPk/dev2/rrpc/response/9002", b"own", false);
    let got = cloud.until("/sys/a1AclPk/dev2/rrpc/response/9002", TEN_S);
    assert_eq!(got.len(), 1, "a forged reply arrived: {got:?}");

    // Reading another device's requests: nothing of dev1's reached the foreign
    // client; its own request, sent last, did.
    cloud.publish("/sys/a1AclPk/dev2/rrpc/request/ctl", b"yours", false);
    let seen = foe.until("/sys/a1AclPk/dev2/rrpc/request/ctl", TEN_S);
    let leaked: Vec<_> = seen
        .iter()
        .filter(|m| {
            let t = &m.topic;
            t.contains("/dev1/") || t.contains("presence") || t.contains("connection")
        })
        .collect();
    assert!(leaked.is_empty(), "the foreign client read {leaked:?}");
    assert_eq!(seen.len(), 1, "{seen:?}");
}

fn a_device_whose_request_topic_the_acl_denies_gets_no_requests() {
    // The template gives an account its own namespace only: a device logged in
    // under another device's name subscribes fine (Mosquitto 2.0 checks reads
    // at delivery) and receives nothing, and the caller's call times out.
    let dev1 = format!("{PK}/dev1");
    let b = broker(&[&dev1, CALLER]);
    let d = device_as(b.port, &dev1, "dev3");
    let c = caller(b.port);
    let r = c.call(&params("dev3", b"x"));
    assert_eq!(r.rrpc_code, Some(RrpcCode::Timeout), "{r:?}");
    assert_eq!(d.stats().requests, 0);
}

fn the_template_is_what_the_readme_documents() {
    let t = std::fs::read_to_string(common::repo_root().join("docs/mosquitto-acl.conf")).unwrap();
    let readme = std::fs::read_to_string(common::repo_root().join("README.md")).unwrap();
    assert!(readme.contains("docs/mosquitto-acl.conf"));
    for line in t.lines().filter(|l| l.starts_with("pattern ")) {
        assert!(line.contains("%u"), "{line}: every pattern is per account");
    }
}

pub fn tests() -> Vec<crate::common::Test> {
    crate::tests![
        under_the_acl_template_a_foreign_account_cannot_fake_presence_answer_or_read needs ["mosquitto", "mosquitto_passwd"],
        a_device_whose_request_topic_the_acl_denies_gets_no_requests needs ["mosquitto", "mosquitto_passwd"],
        the_template_is_what_the_readme_documents,
    ]
}
