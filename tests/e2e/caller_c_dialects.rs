//! The C caller in a dialect that names a method and whose reply carries a
//! status: `rrpc_caller_call_params.name` goes into the Azure request topic,
//! and the device's status comes back in `rrpc_response_view.reply_status` and
//! as ReplyStatus in the JSON. The C caller on MQTT 5 calls an mqtt5 device
//! (MQTT 5 request/response) with the Response Topic of its config.

use std::ffi::{c_char, CString};
use std::ptr::null_mut;
use std::time::Duration;

use rrpc::dialect::Dialect;
use rrpc::ffi::caller::*;
use rrpc::ffi::rrpc_status::RRPC_STATUS_OK;
use rrpc::ffi::session::*;

use crate::common::ffi::{c_defaults, last_error};
use crate::common::{Broker, MqttClient};

fn the_c_caller_names_the_method_and_reads_the_reply_status() {
    let b = Broker::mosquitto();
    let dev = MqttClient::subscribed(b.port, "azure-c-device", "$iothub/methods/POST/#");
    let answer = std::thread::spawn(move || {
        let m = dev
            .next(
                "$iothub/methods/POST/reboot/?$rid=",
                Duration::from_secs(10),
            )
            .expect("the request reaches the device");
        let rid = m.topic.rsplit_once("?$rid=").unwrap().1.to_string();
        dev.publish(
            &format!("$iothub/methods/res/404/?$rid={rid}"),
            b"gone",
            false,
        );
        std::thread::sleep(Duration::from_millis(300));
    });
    let host = CString::new("127.0.0.1").unwrap();
    let mut mqtt: rrpc_mqtt_config = c_defaults(rrpc_mqtt_config_init);
    mqtt.host = host.as_ptr();
    mqtt.port = b.port;
    let mut cfg: rrpc_caller_config = c_defaults(rrpc_caller_config_init);
    cfg.mqtt = &mqtt;
    let mut caller = null_mut();
    assert_eq!(
        rrpc_caller_new(&cfg, &mut caller),
        RRPC_STATUS_OK,
        "{}",
        last_error()
    );

    let name = CString::new("reboot").unwrap();
    let empty = CString::new("").unwrap();
    let mut p: rrpc_caller_call_params = c_defaults(rrpc_caller_call_params_init);
    assert!(p.name.is_null(), "no name by default");
    p.dialect = Dialect::Azure.to_u32();
    p.product_key = empty.as_ptr();
    p.device_name = empty.as_ptr();
    p.payload = b"{}".as_ptr();
    p.payload_len = 2;
    p.timeout_ms = 5000;
    p.name = name.as_ptr();
    let mut r = null_mut();
    assert_eq!(
        rrpc_caller_call(caller, &p, &mut r),
        RRPC_STATUS_OK,
        "{}",
        last_error()
    );
    let v: rrpc_response_view = {
        let mut v = std::mem::MaybeUninit::<rrpc_response_view>::zeroed();
        let st =
            rrpc_response_get_view(r, v.as_mut_ptr(), std::mem::size_of::<rrpc_response_view>());
        assert_eq!(st, RRPC_STATUS_OK);
        // SAFETY: written by rrpc_response_get_view.
        unsafe { v.assume_init() }
    };
    assert_eq!(
        v.code,
        rrpc_code::RRPC_CODE_SUCCESS as u32,
        "{}",
        last_error()
    );
    assert_eq!(v.has_reply_status, 1);
    assert_eq!(v.reply_status, 404);
    let mut buf = [0 as c_char; 512];
    let mut len = 0usize;
    assert_eq!(
        rrpc_response_to_json(r, buf.as_mut_ptr(), buf.len(), &mut len),
        RRPC_STATUS_OK
    );
    // SAFETY: NUL-terminated by rrpc_response_to_json.
    let json = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
        .to_str()
        .unwrap()
        .to_string();
    assert!(json.contains("\"ReplyStatus\":404"), "{json}");

    // Without the name the dialect needs, the call is refused with the reason.
    p.name = std::ptr::null();
    let mut r2 = null_mut();
    assert_eq!(rrpc_caller_call(caller, &p, &mut r2), RRPC_STATUS_OK);
    let mut v2 = std::mem::MaybeUninit::<rrpc_response_view>::zeroed();
    assert_eq!(
        rrpc_response_get_view(
            r2,
            v2.as_mut_ptr(),
            std::mem::size_of::<rrpc_response_view>()
        ),
        RRPC_STATUS_OK
    );
    // SAFETY: written by rrpc_response_get_view.
    let v2 = unsafe { v2.assume_init() };
    assert_eq!(v2.success, 0);
    assert_eq!(v2.has_reply_status, 0);

    assert_eq!(rrpc_response_free(r), RRPC_STATUS_OK);
    assert_eq!(rrpc_response_free(r2), RRPC_STATUS_OK);
    assert_eq!(rrpc_caller_free(caller), RRPC_STATUS_OK);
    answer.join().unwrap();
}

fn the_c_caller_calls_an_mqtt5_device_with_its_response_topic() {
    let b = Broker::mosquitto();
    let dev = rrpc::Client::new(crate::common::device::client_config(
        b.port,
        rrpc::session::MqttVersion::V5,
    ))
    .unwrap();
    let id = rrpc::Identity {
        product_key: "",
        device_name: "",
        custom_topic: Some("plant/+/rpc"),
    };
    dev.add_device(Dialect::Mqtt5, &id).unwrap();
    let replier = dev.replier();
    dev.set_handler(Some(Box::new(move |req: &rrpc::Request<'_>| {
        replier.reply(req.token, req.payload).unwrap();
    })))
    .unwrap();
    dev.start().unwrap();
    let watcher = MqttClient::subscribed(b.port, "mqtt5-c-watcher", "c/replies/here");

    let host = CString::new("127.0.0.1").unwrap();
    let reply_to = CString::new("c/replies/here").unwrap();
    let mut mqtt: rrpc_mqtt_config = c_defaults(rrpc_mqtt_config_init);
    mqtt.host = host.as_ptr();
    mqtt.port = b.port;
    mqtt.mqtt_version = rrpc_mqtt_version::RRPC_MQTT_V5 as _;
    let mut cfg: rrpc_caller_config = c_defaults(rrpc_caller_config_init);
    assert!(cfg.response_topic.is_null(), "the default response topic");
    cfg.mqtt = &mqtt;
    cfg.response_topic = reply_to.as_ptr();
    let mut caller = null_mut();
    assert_eq!(
        rrpc_caller_new(&cfg, &mut caller),
        RRPC_STATUS_OK,
        "{}",
        last_error()
    );
    let topic = CString::new("plant/m7/rpc").unwrap();
    let empty = CString::new("").unwrap();
    let mut p: rrpc_caller_call_params = c_defaults(rrpc_caller_call_params_init);
    p.dialect = Dialect::Mqtt5.to_u32();
    p.product_key = empty.as_ptr();
    p.device_name = empty.as_ptr();
    p.custom_topic = topic.as_ptr();
    p.payload = b"hi".as_ptr();
    p.payload_len = 2;
    p.timeout_ms = 5000;
    let mut r = null_mut();
    assert_eq!(rrpc_caller_call(caller, &p, &mut r), RRPC_STATUS_OK);
    let mut v = std::mem::MaybeUninit::<rrpc_response_view>::zeroed();
    assert_eq!(
        rrpc_response_get_view(r, v.as_mut_ptr(), std::mem::size_of::<rrpc_response_view>()),
        RRPC_STATUS_OK
    );
    // SAFETY: written by rrpc_response_get_view.
    let v = unsafe { v.assume_init() };
    assert_eq!(
        v.code,
        rrpc_code::RRPC_CODE_SUCCESS as u32,
        "{}",
        last_error()
    );
    // The reply came on the configured Response Topic.
    let m = watcher
        .next("c/replies/here", Duration::from_secs(5))
        .expect("the reply on the configured topic");
    assert_eq!(m.payload, b"hi");
    assert_eq!(rrpc_response_free(r), RRPC_STATUS_OK);
    assert_eq!(rrpc_caller_free(caller), RRPC_STATUS_OK);
    dev.stop().unwrap();
}

pub fn tests() -> Vec<crate::common::Test> {
    crate::tests![
        the_c_caller_names_the_method_and_reads_the_reply_status needs ["mosquitto"],
        the_c_caller_calls_an_mqtt5_device_with_its_response_topic needs ["mosquitto"],
    ]
}
