//! End to end: the C examples of examples-c/ as real processes against rumqttd and
//! Mosquitto (the echo devices, the Paho gateway, the caller), the vendors' own device
//! SDKs of tests/peers/ (ThingsBoard, Azure IoT Hub), and the soak. The binary is also
//! the soak's device process (`soak::maybe_device`).

#[path = "../common/mod.rs"]
mod common;

mod caller;
mod caller_c_dialects;
mod examples;
mod gateway;
mod peers;
mod soak;

fn main() {
    soak::maybe_device();
    common::harness::main(crate::modules![
        caller,
        caller_c_dialects,
        examples,
        gateway,
        peers,
        soak
    ])
}
