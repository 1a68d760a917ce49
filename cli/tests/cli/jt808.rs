//! `rrpc jt808 decode|encode` as a user runs them: published frames decode to
//! the documented JSON, encode reproduces them byte for byte, bad input exits
//! with status 2 and names the byte offset and the rule.

use std::fs::File;
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

use crate::common;
use crate::rrpc;

/// `rrpc args...` to its end, reading `stdin`.
fn run_with(args: &[&str], stdin: Stdio) -> Output {
    Command::new(rrpc())
        .args(args)
        .stdin(stdin)
        .output()
        .expect("start rrpc")
}

fn run(args: &[&str]) -> Output {
    run_with(args, Stdio::null())
}

/// `rrpc args...` with `input` on its standard input (from a file).
fn run_stdin(args: &[&str], input: &str) -> Output {
    let path = common::scratch_dir("cli-jt808").join(format!("stdin-{}", std::process::id()));
    std::fs::write(&path, input).expect("write the input");
    run_with(args, File::open(&path).expect("open the input").into())
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).trim().to_string()
}

fn decode_ok(hex: &str) -> Value {
    let o = run(&["jt808", "decode", hex]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    serde_json::from_str(&stdout(&o))
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {}", stdout(&o)))
}

/// `rrpc jt808 encode <words>` (split at spaces) followed by `extra` as given.
fn encode(words: &str, extra: &[&str]) -> Output {
    let mut all = vec!["jt808", "encode"];
    all.extend(words.split_whitespace());
    all.extend_from_slice(extra);
    run(&all)
}

fn encode_ok(words: &str, extra: &[&str]) -> String {
    let o = encode(words, extra);
    assert_eq!(o.status.code(), Some(0), "{words}: {}", stderr(&o));
    stdout(&o)
}

/// Every field of `want` is in the decoded `v`, with that value.
fn assert_fields(v: &Value, want: Value) {
    for (field, value) in want.as_object().expect("an object") {
        assert_eq!(&v[field], value, "{field} in {v}");
    }
}

// SmallChi/JT808, src/JT808.Protocol.Test/MessageBody/JT808_0x8001Test.cs.
const SMALLCHI_8001: &str = "7E80010005012345678900000A0064020000617E";
// SmallChi/JT808, src/JT808.Protocol.Test/MessageBody/JT808_0x0900Test.cs.
const SMALLCHI_0900: &str =
    "7E 09 00 00 09 00 01 23 45 67 89 00 0A 83 73 6D 61 6C 6C 63 68 69 1D 7E";
// traccar/traccar, src/test/java/org/traccar/protocol/Jt808ProtocolEncoderTest.java
// (testEncodeJimiCustom): binary phone field.
const TRACCAR_8900: &str = "7e890000050b3a73ce2ff20000f0544553543b7e";
// cuteLittleDevil/go-jt808, protocol/utils/utils_test.go (2019).
const GOJT808_0001_2019: &str = "7e000140050100000000017299841738ffff007b01c803b57e";

fn decode_general_response_2013() {
    let v = decode_ok(SMALLCHI_8001);
    assert_fields(
        &v,
        json!({
            "msg_id": "0x8001", "version": 2013, "protocol_version": null, "phone": "012345678900",
            "serial": 10, "encryption": 0, "body_len": 5, "package": null, "checksum": "0x61",
            "reply_serial": 100, "reply_id": "0x0200", "result": 0, "result_name": "ok"
        }),
    );
}

fn decode_general_response_2019() {
    let v = decode_ok(GOJT808_0001_2019);
    assert_fields(
        &v,
        json!({
            "msg_id": "0x0001", "version": 2019, "protocol_version": 1,
            "phone": "00000000017299841738", "serial": 65535,
            "reply_serial": 123, "reply_id": "0x01c8", "result": 3, "result_name": "not supported"
        }),
    );
}

fn decode_passthrough_with_spaces_and_from_stdin() {
    let v = decode_ok(SMALLCHI_0900);
    assert_eq!(v["msg_id"], "0x0900");
    assert_eq!(v["content_type"], 0x83);
    assert_eq!(v["content_type_name"], Value::Null);
    assert_eq!(v["content_hex"], "736d616c6c636869");
    let o = run_stdin(&["jt808", "decode", "-"], &format!("{SMALLCHI_0900}\n"));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let w: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(w, v);
}

fn decode_binary_phone() {
    let v = decode_ok(TRACCAR_8900);
    assert_eq!(v["phone"], Value::Null);
    assert_eq!(v["phone_raw"], "0b3a73ce2ff2");
    assert!(v["phone_error"]
        .as_str()
        .unwrap()
        .contains("phone byte 0 is 0x0b"));
    assert_eq!(v["content_type"], 0xf0);
    assert_eq!(v["content_type_name"], "user-defined");
    assert_eq!(v["content_hex"], "54455354");
}

fn encode_reproduces_published_frames() {
    let frames = [
        (
            "--msg-id 0x8001 --phone 12345678900 --serial 10 \
             --reply-serial 100 --reply-id 0x0200 --result 0",
            &[][..],
            SMALLCHI_8001.to_lowercase(),
        ),
        (
            "--msg-id 0x0900 --phone 123456789 --serial 10 --content-type 0x83",
            &["--content-hex", "73 6d 61 6c 6c 63 68 69"],
            SMALLCHI_0900.replace(' ', "").to_lowercase(),
        ),
        (
            "--msg-id 1 --phone 17299841738 --serial 65535 --version 2019 --body-hex 007b01c803",
            &[],
            GOJT808_0001_2019.to_string(),
        ),
    ];
    for (words, extra, want) in frames {
        assert_eq!(encode_ok(words, extra), want, "{words}");
    }
}

fn encode_then_decode_round_trip() {
    let hex = encode_ok(
        "--msg-id 0x8900 --phone 13800138000 --serial 1 --version 2019 --protocol-version 2 \
         --content-type 65 --content-hex 7e7d0102",
        &[],
    );
    assert!(hex
        .chars()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    assert!(hex.starts_with("7e") && hex.ends_with("7e"));
    let v = decode_ok(&hex);
    assert_fields(
        &v,
        json!({
            "msg_id": "0x8900", "version": 2019, "protocol_version": 2,
            "phone": "00000000013800138000", "serial": 1, "body_len": 5,
            "content_type": 65, "content_type_name": "serial port 1", "content_hex": "7e7d0102"
        }),
    );

    // Any other id with a raw body.
    let hex = encode_ok("--msg-id 0x0200 --phone 1 --body-hex 0102", &[]);
    let v = decode_ok(&hex);
    assert_eq!(v["msg_id"], "0x0200");
    assert_eq!(v["body_hex"], "0102");
}

fn bad_frames_name_offset_and_rule() {
    let mut bad_checksum = SMALLCHI_8001.to_string();
    bad_checksum.replace_range(36..38, "60");
    let refused = [
        (
            bad_checksum.as_str(),
            "byte 18: checksum 0x60, computed 0x61",
        ),
        (
            "7e0200000201380013800000017d33007e",
            "byte 13: 0x7d followed by 0x33 (only 0x01 and 0x02 may follow 0x7d)",
        ),
        ("7e zz 7e", "not a hex digit"),
        // A 0x8001 whose body is not 5 bytes: a frame-level success, a body error.
        (
            "7e80010002013800138000000101022b7e",
            "general response has 5",
        ),
    ];
    for (hex, reason) in refused {
        let o = run(&["jt808", "decode", hex]);
        assert_eq!(o.status.code(), Some(2), "{hex}");
        assert!(o.stdout.is_empty(), "{hex}");
        assert!(stderr(&o).contains(reason), "{hex}: {}", stderr(&o));
    }
}

fn bad_encode_flags() {
    let too_long = format!("--msg-id 0x0200 --phone 1 --body-hex {}", "00".repeat(1024));
    let refused = [
        ("--msg-id 0x8900 --phone 12ab", "--phone"),
        ("--msg-id 0x8900 --phone 1", "--content-type"),
        (
            "--msg-id 0x8900 --phone 1 --protocol-version 1 --content-type 1",
            "2019",
        ),
        (&too_long, "1024 bytes"),
    ];
    for (words, reason) in refused {
        let o = encode(words, &[]);
        assert_eq!(o.status.code(), Some(2), "{words}");
        assert!(stderr(&o).contains(reason), "{words}: {}", stderr(&o));
    }
}

pub fn tests() -> Vec<crate::common::Test> {
    crate::tests![
        decode_general_response_2013,
        decode_general_response_2019,
        decode_passthrough_with_spaces_and_from_stdin,
        decode_binary_phone,
        encode_reproduces_published_frames,
        encode_then_decode_round_trip,
        bad_frames_name_offset_and_rule,
        bad_encode_flags,
    ]
}
