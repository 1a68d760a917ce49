//! The vendors' own device SDKs as processes, for interop tests: ThingsBoard's
//! `tb-mqtt-client` (`tests/peers/tb_device.py`, `tb_gateway.py`) and Azure IoT Hub's
//! `azure-iot-device` (`tests/peers/azure_device.py`). `tests/peers/README.md` has the
//! topics, payloads and MQTT credentials each SDK uses.
//!
//! Each SDK runs in a Python venv of its own (their two paho packages are both the
//! module `paho`), `target/peers-venv/{thingsboard,azure}/`, made once from its pinned
//! `tests/peers/requirements-*.txt` with `python3 -m venv` and pip (from PyPI) and
//! reused while its stamp (the requirements and `python3 --version`) matches. A test
//! that starts a peer declares `needs ["python3", ...]`; when the venv cannot be made
//! (no venv module: Debian's `python3-venv`; PyPI unreachable) the test is skipped
//! with the reason, or fails under CI.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::pki::Pki;
use super::{free_port, repo_root, require_tool, skip, wait_listening, Broker, Proc};

/// How long a peer may take from start to `ready` (Python imports, connect, SUBACK).
const READY: Duration = Duration::from_secs(30);

/// The stamp file in a venv: what it was made from.
const STAMP: &str = "requirements.stamp";

/// A vendor SDK, with its venv.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sdk {
    /// `tb-mqtt-client`: `tb_device.py` and `tb_gateway.py`.
    ThingsBoard,
    /// `azure-iot-device`: `azure_device.py`.
    Azure,
}

impl Sdk {
    pub fn name(self) -> &'static str {
        match self {
            Sdk::ThingsBoard => "thingsboard",
            Sdk::Azure => "azure",
        }
    }

    /// `tests/peers/requirements-{name}.txt`.
    pub fn requirements(self) -> PathBuf {
        peers_dir().join(format!("requirements-{}.txt", self.name()))
    }

    /// The modules the venv must import.
    pub fn modules(self) -> &'static str {
        match self {
            Sdk::ThingsBoard => "tb_device_mqtt, tb_gateway_mqtt",
            Sdk::Azure => "azure.iot.device",
        }
    }
}

/// `tests/peers/`: the scripts and their requirements.
pub fn peers_dir() -> PathBuf {
    repo_root().join("tests/peers")
}

/// The Python of `sdk`'s venv, made (once per process) or reused; `None` when
/// python3, its venv module or pip is missing, or the install failed (the reason is
/// printed on stderr).
pub fn venv(sdk: Sdk) -> Option<PathBuf> {
    match made(sdk) {
        Ok(python) => Some(python.clone()),
        Err(why) => {
            eprintln!("the {} SDK venv: {why}", sdk.name());
            None
        }
    }
}

/// The Python of `sdk`'s venv for the running test, which must have declared
/// `python3`: skips it (fails it under CI) when the venv cannot be made.
pub fn python(sdk: Sdk) -> PathBuf {
    require_tool("python3");
    match made(sdk) {
        Ok(python) => python.clone(),
        Err(why) => skip(format!("the {} SDK venv: {why}", sdk.name())),
    }
}

/// A command running `python` with what every peer process gets: no bytecode
/// written into `tests/peers/`, and no package index, so that an SDK that installs
/// a missing module at import time (tb-mqtt-client does) fails instead of
/// downloading while a test runs.
pub fn python_command(python: &Path) -> Command {
    let mut cmd = Command::new(python);
    cmd.env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .env("PIP_NO_INDEX", "1");
    cmd
}

fn made(sdk: Sdk) -> &'static Result<PathBuf, String> {
    static VENVS: [OnceLock<Result<PathBuf, String>>; 2] = [OnceLock::new(), OnceLock::new()];
    VENVS[sdk as usize].get_or_init(|| make(sdk))
}

fn python_in(venv: &Path) -> PathBuf {
    venv.join("bin/python")
}

/// Whether `venv` was made from `stamp` and its Python still runs.
fn fresh(venv: &Path, stamp: &str) -> bool {
    std::fs::read_to_string(venv.join(STAMP)).is_ok_and(|s| s == stamp) && python_in(venv).exists()
}

fn make(sdk: Sdk) -> Result<PathBuf, String> {
    let requirements = sdk.requirements();
    let pins = std::fs::read_to_string(&requirements)
        .map_err(|e| format!("reading {}: {e}", requirements.display()))?;
    let version = run(Command::new("python3").arg("--version"))?;
    let stamp = format!("{}\n{pins}", version.trim());
    let root = repo_root().join("target/peers-venv");
    let dir = root.join(sdk.name());
    if fresh(&dir, &stamp) {
        return Ok(python_in(&dir));
    }
    // Made aside and moved in place whole, so that a venv is either complete or absent
    // (an interrupted install, another process making the same venv).
    let new = root.join(format!("{}.new-{}", sdk.name(), std::process::id()));
    let _ = std::fs::remove_dir_all(&new);
    std::fs::create_dir_all(&root).map_err(|e| format!("creating {}: {e}", root.display()))?;
    if let Err(e) = populate(&new, sdk, &requirements, &stamp) {
        let _ = std::fs::remove_dir_all(&new);
        return Err(e);
    }
    if !fresh(&dir, &stamp) {
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(e) = std::fs::rename(&new, &dir) {
            if !fresh(&dir, &stamp) {
                return Err(format!("moving the venv to {}: {e}", dir.display()));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&new);
    Ok(python_in(&dir))
}

fn populate(venv: &Path, sdk: Sdk, requirements: &Path, stamp: &str) -> Result<(), String> {
    run(Command::new("python3").args(["-m", "venv"]).arg(venv))
        .map_err(|e| format!("{e} (Debian: apt-get install python3-venv)"))?;
    let python = python_in(venv);
    run(Command::new(&python)
        .args(["-m", "pip", "install", "--disable-pip-version-check"])
        .args(["--no-input", "--quiet", "-r"])
        .arg(requirements))?;
    run(python_command(&python).args(["-c", &format!("import {}", sdk.modules())]))?;
    std::fs::write(venv.join(STAMP), stamp).map_err(|e| format!("writing the stamp: {e}"))
}

/// Runs `cmd`; its stdout, or what went wrong with the end of its stderr.
fn run(cmd: &mut Command) -> Result<String, String> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| format!("{shown}: {e}"))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(format!(
        "{shown} failed ({}): {}",
        out.status,
        tail.join(" / ")
    ))
}

/// Starts `tests/peers/{script}` with `args` on `sdk`'s venv and waits until it
/// prints `ready`; panics with its transcript if it exits or takes longer than 30 s.
/// The process is killed by its PID when the [`Proc`] is dropped.
pub fn start(sdk: Sdk, script: &str, args: &[String]) -> Proc {
    let python = python(sdk);
    let mut cmd = python_command(&python);
    cmd.arg(peers_dir().join(script)).args(args);
    let mut peer = Proc::spawn_with(&mut cmd);
    let end = Instant::now() + READY;
    while !peer.stdout().iter().any(|l| l == "ready") {
        let exited = peer
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten());
        if let Some(status) = exited {
            std::thread::sleep(Duration::from_millis(50)); // let the pipes drain
            panic!(
                "{script} exited ({status}) before ready\n{}",
                peer.transcript()
            );
        }
        assert!(
            Instant::now() < end,
            "{script} not ready within {READY:?}\n{}",
            peer.transcript()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    peer
}

/// A ThingsBoard device (TBDeviceMqttClient) with access token `token` on Mosquitto
/// at 127.0.0.1:`port`, answering every server-side RPC.
pub fn tb_device(port: u16, token: &str) -> Proc {
    let port = port.to_string();
    let args = ["--host", "127.0.0.1", "--port", &port, "--token", token];
    start(Sdk::ThingsBoard, "tb_device.py", &super::strings(&args))
}

/// A ThingsBoard gateway (TBGatewayMqttClient) with access token `token` on Mosquitto
/// at 127.0.0.1:`port`, having connected `devices`, answering every gateway RPC.
pub fn tb_gateway(port: u16, token: &str, devices: &[&str]) -> Proc {
    let port = port.to_string();
    let mut args = super::strings(&["--host", "127.0.0.1", "--port", &port, "--token", token]);
    for d in devices {
        args.extend(super::strings(&["--device", d]));
    }
    start(Sdk::ThingsBoard, "tb_gateway.py", &args)
}

/// An Azure IoT Hub device (IoTHubDeviceClient) from `connection_string` (see
/// [`azure_connection_string`]) on the TLS listener 127.0.0.1:`tls_port` of a broker
/// whose certificate `ca` signed, answering every direct method.
pub fn azure_device(tls_port: u16, ca: &Path, connection_string: &str) -> Proc {
    let port = tls_port.to_string();
    let ca = ca.display().to_string();
    let args = [
        "--connection-string",
        connection_string,
        "--ca",
        &ca,
        "--port",
        &port,
    ];
    start(Sdk::Azure, "azure_device.py", &super::strings(&args))
}

/// A device connection string for hub `hub` (an IoT Hub host name, used in the MQTT
/// user name and the SAS token only) whose GatewayHostName is `localhost`, where the
/// SDK connects. `key_base64` is the device's symmetric key, base64.
pub fn azure_connection_string(hub: &str, device_id: &str, key_base64: &str) -> String {
    format!(
        "HostName={hub};DeviceId={device_id};SharedAccessKey={key_base64};GatewayHostName=localhost"
    )
}

/// Mosquitto for the Azure SDK, which speaks TLS only: anonymous, its main listener
/// ([`Broker::port`]) plain for the test's own clients, and a TLS listener on the
/// returned port with a certificate for `localhost` and 127.0.0.1 signed by `pki`'s
/// CA (`pki.path("ca.pem")`). The test needs `mosquitto`.
pub fn azure_broker(pki: &Pki) -> (Broker, u16) {
    let (cert, key) = pki.server("localhost", false);
    let tls_port = free_port();
    let broker = Broker::mosquitto_with(&format!(
        "allow_anonymous true\nlistener {tls_port} 127.0.0.1\ncertfile {}\nkeyfile {}\n",
        cert.display(),
        key.display()
    ));
    assert!(
        wait_listening(tls_port, Duration::from_secs(10)),
        "mosquitto did not listen on {tls_port} (TLS)"
    );
    (broker, tls_port)
}
