//! Brokers on free loopback ports: rumqttd in this process, Mosquitto as a child
//! process stopped by its PID.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, require_tool, scratch_dir, wait_listening};

#[path = "../../cli/src/rumqttd_config.rs"]
mod rumqttd_config;
use rumqttd_config::rumqttd_config;

/// Which broker a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BrokerKind {
    Rumqttd,
    Mosquitto,
}

/// A running broker. Mosquitto is a child process stopped by its PID on drop;
/// rumqttd runs in this test process on its own thread until the process ends.
pub struct Broker {
    pub kind: BrokerKind,
    pub port: u16,
    mosquitto: Option<Child>,
    conf: Option<PathBuf>,
}

impl Broker {
    /// Starts a broker of `kind` on a free loopback port (Mosquitto: see
    /// [`Broker::mosquitto`]).
    pub fn start(kind: BrokerKind) -> Broker {
        match kind {
            BrokerKind::Rumqttd => Broker::rumqttd(),
            BrokerKind::Mosquitto => Broker::mosquitto(),
        }
    }

    pub fn rumqttd() -> Broker {
        Broker::rumqttd_on(free_port())
    }

    /// In-process rumqttd on a given port (for tests that start the device first).
    pub fn rumqttd_on(port: u16) -> Broker {
        let config = rumqttd_config(([127, 0, 0, 1], port).into());
        std::thread::Builder::new()
            .name(format!("rumqttd-{port}"))
            .spawn(move || {
                let mut broker = rumqttd::Broker::new(config);
                if let Err(e) = broker.start() {
                    eprintln!("rumqttd on {port} stopped: {e}");
                }
            })
            .expect("spawn rumqttd");
        assert!(
            wait_listening(port, Duration::from_secs(10)),
            "rumqttd did not listen on {port}"
        );
        Broker {
            kind: BrokerKind::Rumqttd,
            port,
            mosquitto: None,
            conf: None,
        }
    }

    /// Mosquitto for anonymous clients; the running test must declare that it needs
    /// `mosquitto` (it is skipped where it is not installed).
    pub fn mosquitto() -> Broker {
        Broker::mosquitto_with("allow_anonymous true\n")
    }

    /// Mosquitto with extra configuration lines (authentication, for instance).
    pub fn mosquitto_with(extra_conf: &str) -> Broker {
        require_tool("mosquitto");
        let port = free_port();
        let conf = scratch_dir("mosquitto").join(format!("mosquitto-{port}.conf"));
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\nmax_packet_size 4194304\npersistence false\n{extra_conf}"),
        )
        .expect("write mosquitto.conf");
        let mut b = Broker {
            kind: BrokerKind::Mosquitto,
            port,
            mosquitto: None,
            conf: Some(conf),
        };
        b.restart();
        b
    }

    /// Mosquitto that refuses anonymous clients and knows one user (the test needs
    /// `mosquitto` and `mosquitto_passwd`).
    pub fn mosquitto_with_user(user: &str, password: &str) -> Broker {
        require_tool("mosquitto_passwd");
        let dir = scratch_dir("auth");
        let pwfile = dir.join(format!("passwd-{}-{}", std::process::id(), free_port()));
        let _ = std::fs::remove_file(&pwfile);
        let st = std::process::Command::new("mosquitto_passwd")
            .args(["-b", "-c"])
            .arg(&pwfile)
            .args([user, password])
            .status()
            .expect("run mosquitto_passwd");
        assert!(st.success(), "mosquitto_passwd failed");
        Broker::mosquitto_with(&format!(
            "allow_anonymous false\npassword_file {}\n",
            pwfile.display()
        ))
    }

    /// Mosquitto only: starts it again on the same port after [`Broker::kill`].
    pub fn restart(&mut self) {
        assert_eq!(
            self.kind,
            BrokerKind::Mosquitto,
            "only Mosquitto can be restarted"
        );
        let conf = self.conf.as_ref().expect("config");
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        self.mosquitto = Some(child);
        assert!(
            wait_listening(self.port, Duration::from_secs(10)),
            "mosquitto did not listen on {}",
            self.port
        );
    }

    /// Mosquitto only: kills the broker process by its PID (SIGKILL: no clean
    /// DISCONNECTs, like a crash) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.mosquitto.take() {
            // SAFETY: plain kill(2) on our own child's PID.
            unsafe { libc::kill(c.id() as i32, libc::SIGKILL) };
            let _ = c.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.mosquitto.take() {
            // SAFETY: plain kill(2) on our own child's PID.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }
}

/// Every broker kind the end-to-end tests run against: rumqttd and Mosquitto (the
/// test needs `mosquitto`).
pub fn brokers() -> Vec<Broker> {
    [BrokerKind::Rumqttd, BrokerKind::Mosquitto]
        .into_iter()
        .map(Broker::start)
        .collect()
}
