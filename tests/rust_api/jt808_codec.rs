//! The JT/T 808 codec against frames published by independent implementations
//! (each vector names its repository and file), every malformed-input rule, the
//! streaming decoder under arbitrary chunking, sub-package split and reassembly,
//! and a randomized no-panic sweep.

use rrpc::jt808::{
    decode_frame, decode_frame_lenient, encode_frame, split_passthrough, BcdError, Body, BodyError,
    DecodeErrorKind, EncodeError, Escapes, Frame, Header, Package, Phone, PhoneError, Reassembler,
    ReassemblerConfig, ReassemblyError, ResponseResult, StreamDecoder, Version, MAX_BODY_LEN,
    MAX_FRAME_LEN,
};

use crate::common::jt808::{hex, reference_frame, to_hex, XorShift};

// ---------------------------------------------------------------- helpers

/// Decodes `wire`, re-encodes the result and expects the very same bytes.
fn decode_exact(wire: &[u8]) -> Frame {
    let frame = decode_frame(wire).unwrap_or_else(|e| panic!("{e} in {}", to_hex(wire)));
    let mut again = Vec::new();
    encode_frame(&frame.header, &frame.body, &mut again).expect("re-encode");
    assert_eq!(to_hex(&again), to_hex(wire), "re-encoding differs");
    frame
}

fn phone13(d: &str) -> Phone {
    Phone::from_digits(d, Version::V2013).unwrap()
}

fn phone19(d: &str) -> Phone {
    Phone::from_digits(d, Version::V2019).unwrap()
}

// ------------------------------------------------------ 2013 test vectors

/// 0x8900, 2013. traccar/traccar,
/// src/test/java/org/traccar/protocol/Jt808ProtocolEncoderTest.java,
/// testEncodeJimiCustom: a custom "TEST" command sent as 0x8900 type 0xF0. The
/// phone field 0b3a73ce2ff2 is 12345678901234 in binary, not BCD.
const TRACCAR_8900_2013: &str = "7e890000050b3a73ce2ff20000f0544553543b7e";

/// 0x0900, 2013. SmallChi/JT808,
/// src/JT808.Protocol.Test/MessageBody/JT808_0x0900Test.cs, Test1/Test1_1:
/// vendor type 0x83, content "smallchi", phone 123456789, serial 10.
const SMALLCHI_0900_2013: &str =
    "7E 09 00 00 09 00 01 23 45 67 89 00 0A 83 73 6D 61 6C 6C 63 68 69 1D 7E";

/// 0x0900, 2013. traccar/traccar,
/// src/test/java/org/traccar/protocol/Jt808ProtocolDecoderTest.java: a device's
/// OBD report as serial-port-1 pass-through (type 0x41, "$OBD-RT,...\r\n").
const TRACCAR_0900_OBD_2013: &str = "7e0900004a018178393931007941244f42442d52542c31322e332c302c32302c302e30302c302e30302c302c31302e38392c33312e31352c3138312e36382c3138312c35342e32362c3536352e39362c302c302c300d0ae97e";

/// 0x0900, 2013. traccar/traccar, same file: a driver-card report with the
/// non-standard type 0x40 ("GTSL|6|1|0|10218094|1|\r\n" after two more bytes).
const TRACCAR_0900_GTSL_2013: &str =
    "7e0900001b41305888975883194000184754534c7c367c317c307c31303231383039347c317c0d0ab47e";

/// 0x0001, 2013. SmallChi/JT808,
/// src/JT808.Protocol.Test/MessageBody/JT808_0x0001Test.cs, Test1/Test2: the
/// terminal acknowledges heartbeat 0x0002 serial 1000, result success.
const SMALLCHI_0001_2013: &str = "7E 00 01 00 05 01 23 45 67 89 00 04 B3 03 E8 00 02 00 D3 7E";

/// 0x0001, 2013. cuteLittleDevil/go-jt808, protocol/model/parse_test.go,
/// "T0x0001": reply serial 123, reply id 456, result 3 (not supported).
const GOJT808_0001_2013: &str = "7e000100050123456789017fff007b01c803bd7e";

/// 0x8001, 2013. SmallChi/JT808,
/// src/JT808.Protocol.Test/MessageBody/JT808_0x8001Test.cs, Test1/Test2: the
/// platform acknowledges location report 0x0200 serial 100, success.
const SMALLCHI_8001_2013: &str = "7E 80 01 00 05 01 23 45 67 89 00 00 0A 00 64 02 00 00 61 7E";

/// 0x8001, 2013. cuteLittleDevil/go-jt808, protocol/model/parse_test.go,
/// "P0x8001": reply serial 32767, reply id 0x0002, result 0.
const GOJT808_8001_2013: &str = "7e8001000501234567890100007fff0002008e7e";

// ------------------------------------------------------ 2019 test vectors

/// 0x0001, 2019. cuteLittleDevil/go-jt808, protocol/utils/utils_test.go,
/// TestCreateVerifyCode "2019版本": the content between the flags is
/// 000140050100000000017299841738ffff007b01c803 with checksum 0xb5.
const GOJT808_0001_2019: &str = "7e000140050100000000017299841738ffff007b01c803b57e";

/// 0x0001, 2019, captured from a terminal. bamikalea/node-JTT808_ULV-cur,
/// protocol_verification.md: the terminal accepts 0x9101 (serial 0), result 0.
const ULV_0001_2019: &str = "7e00014005010000000062807684233402540000910100847e";

/// 0x8001, 2019. cuteLittleDevil/go-jt808, protocol/model/reply_test.go,
/// TestReply "T0x0002" result2019: the platform's answer to a heartbeat.
const GOJT808_8001_2019: &str = "7e8001400501000000000172998417380000ffff000200867e";

/// 0x8001, 2019. makeclan/xtream-codec (a fork of hylexus/xtream-codec),
/// debug/jt/jt-808-server-spring-boot-starter-debug-ui/src/utils/codec-utils.ts,
/// BuiltinMessage8001: reply serial 111, reply id 0x0200, result 0.
const XTREAM_8001_2019: &str = "7e8001400501000000000139123443290000006f020000dc7e";

/// 0x0900, 2019, captured from a terminal. bamikalea/node-JTT808_ULV-cur,
/// decode-ulv-messages.sh (RAW_MESSAGE): vendor type 0xF3, serial 0x007e sent
/// escaped as 00 7d 02, a correct checksum, but a body-length field of 189 for
/// 192 body bytes. A real frame that breaks the length rule (see
/// `real_0900_2019_with_wrong_body_length`).
const ULV_0900_2019: &str = "7e090040bd0100000000628076842334007d02f3000000000000000000000300651fea0031ee944e45001e00000000190815111a090000000016003f4e6f6e65000000000000000000000000000000000000000000000000000000004e6f6e65000000000000000000000000000000000000000000000000000000000105010000020b0000000000000000000312000000000000000000000000000000000404022d050a0000000c00000000060300072400000000000000000000000000000000000200000000000000000000000000000000887e";

/// 0x8900, 2019. No well-formed 2019 0x8900 frame was found in the public
/// implementations consulted (SmallChi/JT808, traccar, go-jt808, xtream-codec,
/// EMQX), so this one is composed, not quoted: the 2019 header layout and values
/// of go-jt808's 0x8001 vector above (protocol version 1, phone
/// 00000000017299841738, serial 0) and the body of traccar's 0x8900 vector (type
/// 0xF0, "TEST"). The checksum is computed by `reference_frame`, not by the
/// library.
fn composed_8900_2019() -> Vec<u8> {
    reference_frame(&hex("8900 4005 01 00000000017299841738 0000 f0 54455354"))
}

/// 0x0900, 2019. Composed like the 0x8900 one (the only public 2019 0x0900
/// frame found, `ULV_0900_2019`, breaks the length rule): go-jt808's 2019
/// terminal header (protocol version 1, phone 00000000017299841738, serial
/// 0xffff, from `GOJT808_0001_2019`) and SmallChi's 0x0900 body (type 0x83,
/// "smallchi", from `SMALLCHI_0900_2013`).
fn composed_0900_2019() -> Vec<u8> {
    reference_frame(&hex(
        "0900 4009 01 00000000017299841738 ffff 83 736d616c6c636869",
    ))
}

// ------------------------------------------------------ vector tests

/// A vector and the fields it carries: decoding `wire` gives `header` and `body`,
/// and encoding them gives `wire` again.
struct Vector {
    /// The vector's name, said in every assertion about it.
    name: &'static str,
    wire: Vec<u8>,
    header: Header,
    body: Body<'static>,
}

/// A pass-through body.
fn pass(content_type: u8, content: &'static [u8]) -> Body<'static> {
    Body::Passthrough {
        content_type,
        content,
    }
}

/// A general response body.
fn resp(reply_serial: u16, reply_id: u16, result: ResponseResult) -> Body<'static> {
    Body::GeneralResponse {
        reply_serial,
        reply_id,
        result,
    }
}

/// `vector!(WIRE, msg_id, phone, serial, body)`: the vector named after its hex
/// const `WIRE`, or after the function `WIRE()` that composes it.
macro_rules! vector {
    (@make $name:expr, $wire:expr, $msg_id:expr, $phone:expr, $serial:expr, $body:expr) => {
        Vector {
            name: $name,
            wire: $wire,
            header: Header::new($msg_id, $phone, $serial),
            body: $body,
        }
    };
    ($wire:ident(), $($rest:expr),+) => {
        vector!(@make stringify!($wire), $wire(), $($rest),+)
    };
    ($wire:ident, $($rest:expr),+) => {
        vector!(@make stringify!($wire), hex($wire), $($rest),+)
    };
}

/// Every vector above that decodes (all but `ULV_0900_2019`), one a row.
#[rustfmt::skip]
fn vectors() -> Vec<Vector> {
    use ResponseResult::{NotSupported, Ok};
    // traccar's 0x8900 phone is binary (see vector_8900_2013_traccar_binary_phone).
    let binary = Phone::from_raw(&hex("0b3a73ce2ff2")).unwrap();
    let smallchi = phone13("12345678900");
    let gojt808 = phone13("12345678901");
    let gojt808_2019 = phone19("17299841738");
    let obd = b"$OBD-RT,12.3,0,20,0.00,0.00,0,10.89,31.15,181.68,181,54.26,565.96,0,0,0\r\n";
    // A non-standard type (0x40) passes through like the others.
    let gtsl = b"\x00\x18GTSL|6|1|0|10218094|1|\r\n";
    vec![
        //      wire                    msg_id  phone                    serial  body
        vector!(TRACCAR_8900_2013,      0x8900, binary,                  0,      pass(0xf0, b"TEST")),
        vector!(SMALLCHI_0900_2013,     0x0900, phone13("123456789"),    10,     pass(0x83, b"smallchi")),
        vector!(TRACCAR_0900_OBD_2013,  0x0900, phone13("18178393931"),  0x0079, pass(0x41, obd)),
        vector!(TRACCAR_0900_GTSL_2013, 0x0900, phone13("413058889758"), 0x8319, pass(0x40, gtsl)),
        vector!(SMALLCHI_0001_2013,     0x0001, smallchi,                1203,   resp(1000, 0x0002, Ok)),
        vector!(GOJT808_0001_2013,      0x0001, gojt808,                 0x7fff, resp(123, 456, NotSupported)),
        vector!(SMALLCHI_8001_2013,     0x8001, smallchi,                10,     resp(100, 0x0200, Ok)),
        vector!(GOJT808_8001_2013,      0x8001, gojt808,                 0,      resp(32767, 0x0002, Ok)),
        vector!(GOJT808_0001_2019,      0x0001, gojt808_2019,            0xffff, resp(123, 456, NotSupported)),
        vector!(ULV_0001_2019,          0x0001, phone19("628076842334"), 0x0254, resp(0, 0x9101, Ok)),
        vector!(GOJT808_8001_2019,      0x8001, gojt808_2019,            0,      resp(0xffff, 0x0002, Ok)),
        vector!(XTREAM_8001_2019,       0x8001, phone19("13912344329"),  0,      resp(111, 0x0200, Ok)),
        vector!(composed_0900_2019(),   0x0900, gojt808_2019,            0xffff, pass(0x83, b"smallchi")),
        vector!(composed_8900_2019(),   0x8900, gojt808_2019,            0,      pass(0xf0, b"TEST")),
    ]
}

/// Each vector decodes to its header (message id, edition, protocol version,
/// phone, serial, no encryption, not sub-packaged) and body, re-encodes to the
/// same bytes, and encoding its fields gives the publisher's bytes.
fn vectors_decode_to_their_fields_and_encode_back() {
    for v in vectors() {
        let name = v.name;
        let f = decode_exact(&v.wire);
        assert_eq!(f.header, v.header, "{name}: header");
        assert_eq!(f.parse_body(), Ok(v.body), "{name}: body");
        let mut body = Vec::new();
        v.body.write(&mut body);
        let mut out = Vec::new();
        encode_frame(&v.header, &body, &mut out).unwrap();
        assert_eq!(to_hex(&out), to_hex(&v.wire), "{name}: encoded from fields");
    }
}

/// traccar's 0x8900 phone is binary: the frame decodes, the digits do not, the
/// raw bytes stay.
fn vector_8900_2013_traccar_binary_phone() {
    let f = decode_exact(&hex(TRACCAR_8900_2013));
    assert_eq!(f.header.phone.raw(), &hex("0b3a73ce2ff2")[..]);
    assert_eq!(
        f.header.phone.digits(),
        Err(BcdError {
            index: 0,
            byte: 0x0b
        })
    );
    assert_eq!(
        f.header.phone.digits().unwrap_err().to_string(),
        "phone byte 0 is 0x0b, not two BCD digits (each nibble must be 0-9)"
    );
    assert_eq!(f.header.phone.to_string(), "raw:0b3a73ce2ff2");
}

fn real_0900_2019_with_wrong_body_length() {
    let wire = hex(ULV_0900_2019);
    let e = decode_frame(&wire).unwrap_err();
    assert_eq!(e.offset, 3);
    assert_eq!(
        e.kind,
        DecodeErrorKind::BodyLength {
            declared: 189,
            actual: 192
        }
    );
    // Its checksum is right; a wrong one is reported at the escaped offset (the
    // escaped serial shifts everything after it by one).
    let mut bad = wire.clone();
    let n = bad.len();
    bad[n - 2] ^= 0xff;
    let e = decode_frame(&bad).unwrap_err();
    assert_eq!(e.offset, n - 2);
    assert!(matches!(
        e.kind,
        DecodeErrorKind::Checksum {
            found: 0x77,
            computed: 0x88
        }
    ));
}

fn smallchi_8900_body() {
    // SmallChi/JT808, src/JT808.Protocol.Test/MessageBody/JT808_0x8900Test.cs:
    // the 0x8900 body alone, type 0x0B (IC card) and five content bytes.
    let body = hex("0B0000303901");
    assert_eq!(
        Body::parse(0x8900, &body).unwrap(),
        Body::Passthrough {
            content_type: 0x0b,
            content: &hex("0000303901")
        }
    );
    let mut out = Vec::new();
    Body::parse(0x8900, &body).unwrap().write(&mut out);
    assert_eq!(out, body);
}

// ------------------------------------------------------ escaping and bodies

fn checksum_byte_is_escaped() {
    // Choose the serial that makes the checksum 0x7e (and another for 0x7d).
    let body = [0x41, 0x01, 0x02];
    for (want, escaped) in [(0x7e, [0x7d, 0x02]), (0x7d, [0x7d, 0x01])] {
        let serial = (0..=u16::MAX)
            .find(|&s| {
                let f = Frame {
                    header: Header::new(0x8900, phone13("13800138000"), s),
                    body: body.to_vec(),
                };
                f.checksum() == want
            })
            .expect("some serial gives this checksum");
        let header = Header::new(0x8900, phone13("13800138000"), serial);
        let mut out = Vec::new();
        encode_frame(&header, &body, &mut out).unwrap();
        let n = out.len();
        assert_eq!(out[n - 3..n - 1], escaped, "{}", to_hex(&out));
        assert_eq!(out[n - 1], 0x7e);
        // Independent check: the reference encoder agrees byte for byte.
        let mut raw = hex("8900 0003 013800138000");
        raw.extend_from_slice(&serial.to_be_bytes());
        raw.extend_from_slice(&body);
        assert_eq!(out, reference_frame(&raw));
        let f = decode_frame(&out).unwrap();
        assert_eq!(f.header.serial, serial);
        assert_eq!(f.body, body);
    }
}

fn header_and_body_bytes_are_escaped() {
    let header = Header::new(0x7e7d, phone13("13800138000"), 0x7d7e);
    let body = [0x7e, 0x7d, 0x7e, 0x00, 0x7d];
    let mut out = Vec::new();
    encode_frame(&header, &body, &mut out).unwrap();
    assert_eq!(out[0], 0x7e);
    assert_eq!(*out.last().unwrap(), 0x7e);
    assert!(!out[1..out.len() - 1].contains(&0x7e));
    let mut raw = hex("7e7d 0005 013800138000 7d7e");
    raw.extend_from_slice(&body);
    assert_eq!(out, reference_frame(&raw));
    assert_eq!(decode_frame(&out).unwrap().body, body);
}

fn other_message_ids_pass_through() {
    let header = Header::new(0x0200, phone13("13800138000"), 7);
    let mut out = Vec::new();
    encode_frame(&header, &[1, 2, 3], &mut out).unwrap();
    let f = decode_frame(&out).unwrap();
    assert_eq!(f.parse_body().unwrap(), Body::Other(&[1, 2, 3]));
}

fn typed_body_errors() {
    assert_eq!(
        Body::parse(0x8900, &[]),
        Err(BodyError::EmptyPassthrough { msg_id: 0x8900 })
    );
    assert_eq!(
        Body::parse(0x0900, &[]).unwrap_err().to_string(),
        "0x0900 body is empty (a pass-through body starts with its type byte)"
    );
    assert_eq!(
        Body::parse(0x0001, &[0, 1, 0, 2]),
        Err(BodyError::ResponseLength {
            msg_id: 0x0001,
            len: 4
        })
    );
    assert_eq!(
        Body::parse(0x8001, &[0, 1, 0, 2, 4]).unwrap(),
        Body::GeneralResponse {
            reply_serial: 1,
            reply_id: 2,
            result: ResponseResult::AlarmConfirmation
        }
    );
    assert_eq!(
        Body::parse(0x0001, &[0, 1, 0, 2, 4]).unwrap(),
        Body::GeneralResponse {
            reply_serial: 1,
            reply_id: 2,
            result: ResponseResult::Unknown(4)
        }
    );
    // A packet of a sub-packaged pass-through has no typed body of its own.
    let mut header = Header::new(0x8900, phone13("1"), 1);
    header.package = Some(Package { count: 2, index: 2 });
    let f = Frame {
        header,
        body: vec![1, 2, 3],
    };
    assert!(matches!(f.parse_body(), Err(BodyError::Packet { .. })));
}

fn phone_rules() {
    assert_eq!(phone13("13800138000").digits().unwrap(), "013800138000");
    assert_eq!(
        phone19("13800138000").digits().unwrap(),
        "00000000013800138000"
    );
    let refused = [
        (
            "1380013800x",
            Version::V2013,
            PhoneError::NotDigit {
                index: 10,
                found: 'x',
            },
        ),
        (
            "123456789012345678901",
            Version::V2019,
            PhoneError::TooLong {
                digits: 21,
                max: 20,
            },
        ),
    ];
    for (digits, version, why) in refused {
        let got = Phone::from_digits(digits, version);
        assert_eq!(got, Err(why), "{digits} ({version:?})");
    }
    assert!(Phone::from_digits("123456789012", Version::V2013).is_ok());
    assert!(Phone::from_digits("+8613800138000", Version::V2019).is_err());
    // A nibble above 9 in a later byte names that byte.
    let p = Phone::from_raw(&hex("01380013a000")).unwrap();
    assert_eq!(
        p.digits(),
        Err(BcdError {
            index: 4,
            byte: 0xa0
        })
    );
    assert_eq!(p.raw_hex(), "01380013a000");
    assert_eq!(Phone::from_raw(&[1, 2, 3]), Err(PhoneError::RawLength(3)));
}

fn encode_errors() {
    let header = Header::new(0x8900, phone13("1"), 1);
    let mut out = Vec::new();
    assert_eq!(
        encode_frame(&header, &[0; MAX_BODY_LEN + 1], &mut out),
        Err(EncodeError::BodyTooLong { len: 1024 })
    );
    assert!(out.is_empty(), "nothing appended on error");
    encode_frame(&header, &[0; MAX_BODY_LEN], &mut out).unwrap();

    let mut h = header.clone();
    h.encryption = 8;
    assert_eq!(
        encode_frame(&h, &[], &mut Vec::new()),
        Err(EncodeError::Encryption(8))
    );
    let mut h = header.clone();
    h.version = Version::V2019;
    assert!(matches!(
        encode_frame(&h, &[], &mut Vec::new()),
        Err(EncodeError::PhoneLength { .. })
    ));
    let mut h = header.clone();
    h.protocol_version = 1;
    assert_eq!(
        encode_frame(&h, &[], &mut Vec::new()),
        Err(EncodeError::ProtocolVersionIn2013(1))
    );
    let mut h = header;
    h.package = Some(Package { count: 2, index: 3 });
    assert!(matches!(
        encode_frame(&h, &[], &mut Vec::new()),
        Err(EncodeError::Package(_))
    ));
}

fn header_fields_round_trip() {
    let mut h = Header::new(0x1234, phone19("98765432109876543210"), 0xfffe);
    h.protocol_version = 0x7e;
    h.encryption = 5;
    h.package = Some(Package {
        count: 0x7d7e,
        index: 0x7d7d,
    });
    let mut out = Vec::new();
    encode_frame(&h, &[9; 100], &mut out).unwrap();
    let f = decode_frame(&out).unwrap();
    assert_eq!(f.header, h);
    assert_eq!(f.body, vec![9; 100]);
}

// ------------------------------------------------------ malformed input

fn decode_err(wire: &[u8]) -> (usize, DecodeErrorKind, String) {
    let e = decode_frame(wire).expect_err("must not decode");
    (e.offset, e.kind.clone(), e.to_string())
}

/// Expects `wire` to be refused at byte `offset` for `kind`, with the message `text`.
fn assert_refused(wire: &[u8], offset: usize, kind: DecodeErrorKind, text: &str) {
    let (got_offset, got_kind, got_text) = decode_err(wire);
    assert_eq!(
        (got_offset, got_kind, got_text.as_str()),
        (offset, kind, text),
        "{}",
        to_hex(wire)
    );
}

fn bad_checksum() {
    let mut wire = hex(SMALLCHI_8001_2013);
    wire[18] = 0x60; // was 0x61
    let kind = DecodeErrorKind::Checksum {
        found: 0x60,
        computed: 0x61,
    };
    assert_refused(&wire, 18, kind, "byte 18: checksum 0x60, computed 0x61");

    // The offset is in the escaped input: an escaped byte before the checksum
    // moves it one further.
    let mut h = Header::new(0x0200, phone13("13800138000"), 0x007e);
    h.encryption = 0;
    let mut wire = Vec::new();
    encode_frame(&h, &[1, 2], &mut wire).unwrap();
    let n = wire.len();
    wire[n - 2] ^= 0x01;
    let (offset, _, _) = decode_err(&wire);
    assert_eq!(offset, n - 2);
    assert_eq!(offset, 16);
}

fn invalid_escape() {
    // 0x7d followed by 0x33 in the body.
    let wire = hex("7e 0200 0002 013800138000 0001 7d33 00 7e");
    let kind = DecodeErrorKind::InvalidEscape { next: 0x33 };
    let text = "byte 13: 0x7d followed by 0x33 (only 0x01 and 0x02 may follow 0x7d)";
    assert_refused(&wire, 13, kind, text);
}

fn lone_escape() {
    let wire = hex("7e 0200 0001 013800138000 0001 7d 7e");
    let text = "byte 13: lone 0x7d at end of frame";
    assert_refused(&wire, 13, DecodeErrorKind::LoneEscape, text);
}

fn shorter_than_header() {
    let wire = hex("7e 0001 0005 0123456789 7e");
    let kind = DecodeErrorKind::TooShort {
        len: 9,
        version: Version::V2013,
        header_len: 12,
    };
    let text = "byte 10: frame of 9 bytes is shorter than a 2013 header (12 bytes) and checksum";
    assert_refused(&wire, 10, kind, text);
    // A 2019 attribute word asks for the longer header.
    let wire = reference_frame(&hex("0001 4000 01 00000000001234567890"));
    let (_, kind, _) = decode_err(&wire);
    assert!(matches!(
        kind,
        DecodeErrorKind::TooShort {
            version: Version::V2019,
            header_len: 17,
            ..
        }
    ));
    // Sub-package bit set without room for the package fields.
    let wire = reference_frame(&hex("0001 2000 013800138000 0001"));
    let (_, kind, _) = decode_err(&wire);
    assert!(matches!(
        kind,
        DecodeErrorKind::TooShort { header_len: 16, .. }
    ));
    assert!(matches!(
        decode_err(&hex("7e7e")).1,
        DecodeErrorKind::TooShort { len: 0, .. }
    ));
}

fn body_length_disagrees() {
    // Field says 30, five body bytes follow; checksum right, so the length rule fires.
    let wire = reference_frame(&hex("0900 001e 013800138000 0001 4101020304"));
    let kind = DecodeErrorKind::BodyLength {
        declared: 30,
        actual: 5,
    };
    let text = "byte 3: body-length field says 30, frame carries 5";
    assert_refused(&wire, 3, kind, text);
}

fn missing_flags() {
    let good = hex(SMALLCHI_8001_2013);
    let kind = DecodeErrorKind::MissingStartFlag { found: 0x80 };
    let text = "byte 0: frame starts with 0x80, not the 0x7e flag";
    assert_refused(&good[1..], 0, kind, text);

    let kind = DecodeErrorKind::MissingEndFlag { found: Some(0x61) };
    let text = "byte 18: frame ends with 0x61, not the 0x7e flag";
    assert_refused(&good[..good.len() - 1], 18, kind, text);

    assert_eq!(
        decode_err(&[0x7e]).1,
        DecodeErrorKind::MissingEndFlag { found: None }
    );
    assert_eq!(decode_err(&[]).1, DecodeErrorKind::Empty);

    // Two frames back to back are not one frame.
    let mut two = good.clone();
    two.extend_from_slice(&good);
    let (offset, kind, _) = decode_err(&two);
    assert_eq!(offset, 19);
    assert_eq!(kind, DecodeErrorKind::FlagInside);
}

fn frame_too_long() {
    let mut wire = vec![0x11; MAX_FRAME_LEN + 2];
    wire[0] = 0x7e;
    wire[MAX_FRAME_LEN + 1] = 0x7e;
    let kind = DecodeErrorKind::TooLong { max: MAX_FRAME_LEN };
    let text =
        format!("byte {MAX_FRAME_LEN}: frame longer than the limit of {MAX_FRAME_LEN} bytes");
    assert_refused(&wire, MAX_FRAME_LEN, kind, &text);
    // The longest legal frame still decodes: 2019, sub-packaged, 1023 body
    // bytes, everything escaped.
    let mut h = Header::new(0x7e7e, Phone::from_raw(&[0x7e; 10]).unwrap(), 0x7e7e);
    h.protocol_version = 0x7e;
    h.package = Some(Package {
        count: 0x7e7e,
        index: 0x7e7e,
    });
    let body = [0x7e; MAX_BODY_LEN];
    let mut out = Vec::new();
    encode_frame(&h, &body, &mut out).unwrap();
    assert!(out.len() <= MAX_FRAME_LEN);
    assert_eq!(decode_frame(&out).unwrap().header, h);
}

fn bad_package_fields() {
    let wire = reference_frame(&hex("8900 2001 013800138000 0001 0003 0000 41"));
    let kind = DecodeErrorKind::Package(Package { count: 3, index: 0 });
    let text = "byte 13: package index 0 of 3 (indices run from 1 to the count)";
    assert_refused(&wire, 13, kind, text);
}

fn unescaped_0x7d_from_a_lenient_terminal_is_refused() {
    // traccar/traccar, src/test/java/org/traccar/protocol/Jt808ProtocolDecoderTest.java
    // has two 0x0900 frames from a terminal whose phone ends in 0x7d and that
    // does not escape it (traccar's decoder tolerates this). The strict decoder
    // refuses both, naming the rule.
    let a = hex("7e0900001f4f07788ef87d000cf0230223150215010203013800000c000b029dc58c04b99b60230223171822507e");
    let (offset, kind, _) = decode_err(&a);
    assert_eq!(
        (offset, kind),
        (10, DecodeErrorKind::InvalidEscape { next: 0x00 })
    );
    // Here 7d 01 happens to look like an escape, so one body byte goes missing.
    let b = hex("7e090000344f07788ef87d0138f02305151230460102020001ffffffff000100001457000000020006503134353700000c000a029dc63004b99a98230515132726787e");
    let e = decode_frame(&b).unwrap_err();
    assert!(
        matches!(
            e.kind,
            DecodeErrorKind::Checksum { .. } | DecodeErrorKind::BodyLength { .. }
        ),
        "{e}"
    );
}

fn lenient_mode_reads_traccars_unescaped_0x7d_frames() {
    let a = hex("7e0900001f4f07788ef87d000cf0230223150215010203013800000c000b029dc58c04b99b60230223171822507e");
    let b = hex("7e090000344f07788ef87d0138f02305151230460102020001ffffffff000100001457000000020006503134353700000c000a029dc63004b99a98230515132726787e");
    let phone = Phone::from_raw(&hex("4f07788ef87d")).unwrap();
    for (wire, serial, body_len) in [(&a, 0x000c, 0x1f), (&b, 0x0138, 0x34)] {
        let f = decode_frame_lenient(wire).unwrap();
        assert_eq!(f.header.msg_id, 0x0900);
        assert_eq!(f.header.phone, phone);
        assert_eq!(f.header.serial, serial);
        assert_eq!(f.body.len(), body_len);
        assert_eq!(f.body[0], 0xf0, "pass-through type");
        // Re-encoded, the 0x7d is escaped: a strict decoder reads it back.
        let mut strict = Vec::new();
        f.encode(&mut strict).unwrap();
        assert_eq!(decode_frame(&strict).unwrap(), f);
        // The stream decoder in lenient mode, chunked, counts them.
        let mut d = StreamDecoder::with_escapes(MAX_FRAME_LEN, Escapes::Lenient);
        for chunk in wire.chunks(5) {
            d.push(chunk);
        }
        assert_eq!(d.next_frame(), Some(Ok(f)));
        assert_eq!(d.lenient_frames(), 1);
        // Off by default.
        let mut d = StreamDecoder::default();
        d.push(wire);
        assert!(matches!(d.next_frame(), Some(Err(_))));
        assert_eq!(d.escapes(), Escapes::Strict);
    }
    // Strict frames decode the same in both modes, and what neither reading
    // makes valid keeps the strict reading's error.
    for v in all_vectors() {
        assert_eq!(decode_frame_lenient(&v), decode_frame(&v));
    }
    let mut bad = hex(TRACCAR_8900_2013);
    let n = bad.len();
    bad[n - 2] ^= 1;
    assert_eq!(decode_frame_lenient(&bad), decode_frame(&bad));
    assert!(decode_frame(&bad).is_err());
}

// ------------------------------------------------------ stream decoder

fn all_vectors() -> Vec<Vec<u8>> {
    vectors().into_iter().map(|v| v.wire).collect()
}

fn drain(dec: &mut StreamDecoder) -> Vec<Result<Frame, String>> {
    let mut v = Vec::new();
    while let Some(r) = dec.next_frame() {
        v.push(r.map_err(|e| e.to_string()));
    }
    v
}

fn expected_frames() -> Vec<Result<Frame, String>> {
    all_vectors()
        .iter()
        .map(|w| Ok(decode_frame(w).unwrap()))
        .collect()
}

fn stream_split_at_every_offset() {
    let stream: Vec<u8> = all_vectors().concat();
    let want = expected_frames();
    for k in 0..=stream.len() {
        let mut dec = StreamDecoder::default();
        dec.push(&stream[..k]);
        let mut got = drain(&mut dec);
        dec.push(&stream[k..]);
        got.extend(drain(&mut dec));
        assert_eq!(got, want, "split at {k}");
        assert_eq!(dec.skipped_bytes(), 0);
        assert_eq!(dec.buffered_len(), 0);
    }
}

fn stream_byte_by_byte_and_random_chunks() {
    let stream: Vec<u8> = all_vectors().concat();
    let want = expected_frames();
    let mut dec = StreamDecoder::default();
    let mut got = Vec::new();
    for b in &stream {
        dec.push(std::slice::from_ref(b));
        got.extend(drain(&mut dec));
    }
    assert_eq!(got, want);

    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for _ in 0..200 {
        let mut dec = StreamDecoder::default();
        let mut got = Vec::new();
        let mut rest = &stream[..];
        while !rest.is_empty() {
            let n = 1 + rng.below(rest.len().min(97));
            dec.push(&rest[..n]);
            rest = &rest[n..];
            if rng.below(3) == 0 {
                got.extend(drain(&mut dec));
            }
        }
        got.extend(drain(&mut dec));
        assert_eq!(got, want);
    }
}

fn stream_merged_in_one_push() {
    let stream: Vec<u8> = all_vectors().concat();
    let mut dec = StreamDecoder::default();
    dec.push(&stream);
    assert_eq!(dec.ready_len(), all_vectors().len());
    assert_eq!(drain(&mut dec), expected_frames());
}

fn stream_skips_garbage_between_frames() {
    let frames = all_vectors();
    let garbage: [&[u8]; 4] = [b"AT+OK\r\n", &[0x00, 0xff, 0x7d, 0x01], b"", &[0x7d]];
    let mut stream = b"noise before the first flag".to_vec();
    let mut garbage_len = stream.len();
    for (i, f) in frames.iter().enumerate() {
        stream.extend_from_slice(f);
        let g = garbage[i % garbage.len()];
        stream.extend_from_slice(g);
        garbage_len += g.len();
    }
    for k in [0, 1, 5, 20, stream.len() / 2, stream.len()] {
        let mut dec = StreamDecoder::default();
        dec.push(&stream[..k]);
        dec.push(&stream[k..]);
        assert_eq!(drain(&mut dec), expected_frames());
        assert_eq!(dec.skipped_bytes(), garbage_len as u64);
    }
}

fn stream_oversize_frame_then_good_one() {
    let good = hex(SMALLCHI_8001_2013);
    let header = Header::new(0x0900, phone13("13800138000"), 5);
    let mut big = Vec::new();
    encode_frame(&header, &[0x41; 200], &mut big).unwrap();
    let bound = 64;
    let mut stream = big.clone();
    stream.extend_from_slice(&good);
    stream.extend_from_slice(&big);
    stream.extend_from_slice(&good);

    // In one push, and byte by byte (the buffer never exceeds the bound).
    for chunk in [stream.len(), 1, 7] {
        let mut dec = StreamDecoder::new(bound);
        let mut got = Vec::new();
        for c in stream.chunks(chunk) {
            dec.push(c);
            assert!(dec.buffered_len() <= bound);
            got.extend(drain(&mut dec));
        }
        assert_eq!(got.len(), 4, "{got:?}");
        let too_long = format!("byte {bound}: frame longer than the limit of {bound} bytes");
        assert_eq!(got[0], Err(too_long.clone()));
        assert_eq!(got[1], Ok(decode_frame(&good).unwrap()));
        assert_eq!(got[2], Err(too_long));
        assert_eq!(got[3], Ok(decode_frame(&good).unwrap()));
    }
}

fn stream_reports_bad_frames_and_continues() {
    let good = hex(SMALLCHI_0001_2013);
    let mut bad = good.clone();
    bad[18] ^= 1; // checksum
    let mut stream = bad.clone();
    stream.extend_from_slice(&good);
    stream.extend_from_slice(&[0x7e, 0x7e, 0x7e]); // empty frames are skipped
    stream.extend_from_slice(&good);
    let mut dec = StreamDecoder::default();
    dec.push(&stream);
    let got = drain(&mut dec);
    assert_eq!(got.len(), 3);
    assert!(got[0].as_ref().unwrap_err().contains("checksum"));
    assert!(got[1].is_ok() && got[2].is_ok());
    // An unfinished frame waits for more bytes.
    dec.push(&good[..10]);
    assert!(dec.next_frame().is_none());
    assert_eq!(dec.buffered_len(), 10);
    dec.push(&good[10..]);
    assert!(dec.next_frame().unwrap().is_ok());
}

// ------------------------------------------------------ sub-packages

fn template() -> Header {
    Header::new(0x8900, phone13("13800138000"), 100)
}

fn reassemble(frames: &[Vec<u8>], order: &[usize]) -> Frame {
    let mut r = Reassembler::default();
    let mut out = None;
    for (n, &i) in order.iter().enumerate() {
        let f = decode_frame(&frames[i]).unwrap();
        let got = r.push(f, 1000 + n as u64).unwrap();
        if n + 1 < order.len() {
            assert!(got.is_none());
        } else {
            out = got;
        }
    }
    assert_eq!(r.partials(), 0);
    assert_eq!(r.buffered_bytes(), 0);
    out.expect("whole message")
}

fn split_exactly_1023_is_one_frame() {
    let content = vec![0x5a; 1022];
    let frames = split_passthrough(&template(), 0x41, &content, MAX_BODY_LEN).unwrap();
    assert_eq!(frames.len(), 1);
    let f = decode_frame(&frames[0]).unwrap();
    assert_eq!(f.header.package, None);
    assert_eq!(f.body.len(), 1023);
    assert_eq!(
        f.parse_body().unwrap(),
        Body::Passthrough {
            content_type: 0x41,
            content: &content
        }
    );
}

fn split_1024_is_two_packets() {
    let content: Vec<u8> = (0..1023u32).map(|i| (i % 251) as u8).collect();
    let frames = split_passthrough(&template(), 0xf7, &content, MAX_BODY_LEN).unwrap();
    assert_eq!(frames.len(), 2);
    let a = decode_frame(&frames[0]).unwrap();
    let b = decode_frame(&frames[1]).unwrap();
    assert_eq!(a.header.package, Some(Package { count: 2, index: 1 }));
    assert_eq!(b.header.package, Some(Package { count: 2, index: 2 }));
    assert_eq!((a.header.serial, b.header.serial), (100, 101));
    assert_eq!(a.body.len(), 1023);
    assert_eq!(a.body[0], 0xf7, "type byte in the first packet");
    assert_eq!(b.body, content[1022..], "no type byte in later packets");
    for order in [[0, 1], [1, 0]] {
        let whole = reassemble(&frames, &order);
        assert_eq!(whole.header, template());
        assert_eq!(
            whole.parse_body().unwrap(),
            Body::Passthrough {
                content_type: 0xf7,
                content: &content
            }
        );
    }
}

fn split_and_reassemble_long_messages_in_any_order() {
    let mut rng = XorShift(42);
    for (len, max_body) in [
        (5000, 1023),
        (3069, 1023),
        (10, 2),
        (777, 100),
        (2046, 1023),
    ] {
        let content = rng.bytes(len);
        let mut t = template();
        t.serial = 65534; // serials wrap past 65535
        let frames = split_passthrough(&t, 0x42, &content, max_body).unwrap();
        assert_eq!(frames.len(), (len + 1).div_ceil(max_body));
        let mut order: Vec<usize> = (0..frames.len()).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i + 1));
        }
        let whole = reassemble(&frames, &order);
        assert_eq!(whole.header.serial, 65534);
        assert_eq!(whole.header.package, None);
        let mut want = vec![0x42];
        want.extend_from_slice(&content);
        assert_eq!(whole.body, want);
    }
}

fn split_rejects_bad_sizes() {
    assert_eq!(
        split_passthrough(&template(), 1, &[], 1024),
        Err(EncodeError::MaxBody(1024))
    );
    assert_eq!(
        split_passthrough(&template(), 1, &[], 1),
        Err(EncodeError::MaxBody(1))
    );
    assert_eq!(
        split_passthrough(&template(), 1, &vec![0; 70_000 * 2], 2),
        Err(EncodeError::TooManyPackets(70_001))
    );
}

fn reassembly_errors_and_limits() {
    let content = vec![7; 3000];
    let frames: Vec<Frame> = split_passthrough(&template(), 0x41, &content, MAX_BODY_LEN)
        .unwrap()
        .iter()
        .map(|w| decode_frame(w).unwrap())
        .collect();
    assert_eq!(frames.len(), 3);

    // Duplicate.
    let mut r = Reassembler::default();
    assert_eq!(r.push(frames[0].clone(), 0), Ok(None));
    assert_eq!(
        r.push(frames[0].clone(), 1),
        Err(ReassemblyError::Duplicate {
            msg_id: 0x8900,
            index: 1,
            count: 3
        })
    );
    // Inconsistent count for the same message (same first serial).
    let mut odd = frames[1].clone();
    odd.header.package = Some(Package { count: 4, index: 2 });
    assert_eq!(
        r.push(odd, 2),
        Err(ReassemblyError::InconsistentCount {
            msg_id: 0x8900,
            expected: 3,
            found: 4
        })
    );
    assert_eq!(r.push(frames[1].clone(), 3), Ok(None));
    assert!(r.push(frames[2].clone(), 4).unwrap().is_some());

    // Expiry by the caller's clock.
    let cfg = ReassemblerConfig {
        max_partials: 2,
        max_partials_per_terminal: 2,
        max_bytes: 2500,
        max_bytes_per_terminal: 2500,
        timeout_ms: 100,
        ..ReassemblerConfig::default()
    };
    let mut r = Reassembler::new(cfg).unwrap();
    r.push(frames[0].clone(), 0).unwrap();
    assert_eq!(r.partials(), 1);
    assert_eq!(r.expire(99), 0);
    assert_eq!(r.expire(100), 1);
    assert_eq!(r.buffered_bytes(), 0);
    // The late packets then start a new partial that never completes.
    r.push(frames[1].clone(), 150).unwrap();
    r.push(frames[2].clone(), 151).unwrap();
    assert_eq!(r.partials(), 1);
    assert_eq!(r.expire(250), 1);

    // Byte limit.
    let mut r = Reassembler::new(cfg).unwrap();
    r.push(frames[0].clone(), 0).unwrap();
    r.push(frames[1].clone(), 0).unwrap();
    assert_eq!(
        r.push(frames[2].clone(), 0),
        Err(ReassemblyError::TooManyBytes { max: 2500 })
    );
    // Partial-message limit: three terminals, room for two.
    let mut r = Reassembler::new(ReassemblerConfig {
        max_bytes: 1 << 20,
        max_bytes_per_terminal: 1 << 20,
        ..cfg
    })
    .unwrap();
    for (i, d) in ["1", "2", "3"].iter().enumerate() {
        let mut f = frames[0].clone();
        f.header.phone = phone13(d);
        let res = r.push(f, 0);
        if i < 2 {
            assert_eq!(res, Ok(None));
        } else {
            assert_eq!(res, Err(ReassemblyError::TooManyPartials { max: 2 }));
        }
    }
    // Bad package fields, and whole frames pass straight through.
    let mut f = frames[0].clone();
    f.header.package = Some(Package { count: 2, index: 0 });
    assert!(matches!(r.push(f, 0), Err(ReassemblyError::BadPackage(_))));
    let whole = decode_frame(&hex(SMALLCHI_0900_2013)).unwrap();
    assert_eq!(r.push(whole.clone(), 0), Ok(Some(whole)));
}

/// Packets of a 0x0900 from `phone` announcing `count` packets, first serial
/// `serial`, each with an empty body but packet 1 (the type byte).
fn empty_packet(phone: Phone, serial: u16, count: u16, index: u16) -> Frame {
    let mut header = Header::new(0x0900, phone, serial.wrapping_add(index - 1));
    header.package = Some(Package { count, index });
    Frame {
        header,
        body: if index == 1 { vec![0x41] } else { Vec::new() },
    }
}

fn reassembly_bounds_packets_even_when_they_are_empty() {
    // Empty packets used to cost nothing against max_bytes: 256 partial
    // messages of 65534 empty packets each were about 0.5 GB.
    let mut r = Reassembler::default();
    let t = phone13("13800138000");
    let c = ReassemblerConfig::default();
    assert_eq!(
        r.push(empty_packet(t, 0, 65_535, 2), 0),
        Err(ReassemblyError::TooManyPackets {
            max: c.max_packets_per_terminal
        }),
        "a message that could never complete is refused at its first packet"
    );
    // Within the announced bound, empty packets still count one each.
    let count = c.max_packets_per_terminal as u16;
    for index in 2..=count {
        assert_eq!(r.push(empty_packet(t, 0, count, index), 0), Ok(None));
    }
    assert_eq!(r.buffered_packets(), usize::from(count) - 1);
    assert_eq!(r.push(empty_packet(t, 5000, 2, 2), 0), Ok(None));
    assert_eq!(
        r.push(empty_packet(t, 6000, 2, 2), 0),
        Err(ReassemblyError::TerminalLimit {
            limit: "max_packets_per_terminal",
            max: c.max_packets_per_terminal
        })
    );
    // Over all terminals: 16 terminals fill max_packets.
    let mut r = Reassembler::default();
    let mut refused = 0;
    for p in 0..20u32 {
        let phone = phone13(&format!("1{p:03}"));
        for index in 2..=count {
            if r.push(empty_packet(phone, 0, count, index), 0).is_err() {
                refused += 1;
            }
        }
    }
    assert!(r.buffered_packets() <= c.max_packets);
    assert_eq!(
        r.buffered_packets() + refused,
        20 * (usize::from(count) - 1)
    );
    assert_eq!(r.buffered_packets(), c.max_packets);
}

fn one_terminal_cannot_take_every_partial_slot() {
    let mut r = Reassembler::default();
    let c = ReassemblerConfig::default();
    let greedy = phone13("666");
    let mut refused = None;
    for serial in 0..300u16 {
        if let Err(e) = r.push(empty_packet(greedy, serial * 2, 2, 1), 0) {
            refused.get_or_insert(e);
        }
    }
    assert_eq!(
        refused,
        Some(ReassemblyError::TerminalLimit {
            limit: "max_partials_per_terminal",
            max: c.max_partials_per_terminal
        })
    );
    assert_eq!(r.partials(), c.max_partials_per_terminal);
    assert_eq!(r.terminal_usage(&greedy).0, c.max_partials_per_terminal);
    // Another terminal still reassembles.
    let other = phone13("13800138000");
    assert_eq!(r.push(empty_packet(other, 9, 2, 1), 0), Ok(None));
    let whole = r.push(empty_packet(other, 9, 2, 2), 0).unwrap().unwrap();
    assert_eq!(whole.body, [0x41]);
    // Bytes per terminal: one terminal cannot fill max_bytes either.
    let cfg = ReassemblerConfig {
        max_bytes_per_terminal: 2000,
        ..c
    };
    let mut r = Reassembler::new(cfg).unwrap();
    let mut big = empty_packet(greedy, 0, 3, 1);
    big.body = vec![1; 1023];
    assert_eq!(r.push(big.clone(), 0), Ok(None));
    big.header.serial = 1;
    big.header.package = Some(Package { count: 3, index: 2 });
    assert_eq!(
        r.push(big.clone(), 0),
        Err(ReassemblyError::TerminalLimit {
            limit: "max_bytes_per_terminal",
            max: 2000
        })
    );
    // Forgetting the terminal gives everything back.
    assert_eq!(r.forget(&greedy), 1);
    assert_eq!(
        (r.partials(), r.buffered_bytes(), r.buffered_packets()),
        (0, 0, 0)
    );
}

fn reassembly_limits_are_checked_at_config_time() {
    let d = ReassemblerConfig::default();
    assert!(Reassembler::new(d).is_ok());
    let cases = [
        (
            ReassemblerConfig {
                max_partials: 0,
                ..d
            },
            "max_partials 0 is outside 1..=65536",
        ),
        (
            ReassemblerConfig {
                max_partials: 65_537,
                ..d
            },
            "max_partials 65537 is outside 1..=65536",
        ),
        (
            ReassemblerConfig {
                max_partials_per_terminal: 257,
                ..d
            },
            "max_partials_per_terminal 257 is outside 1..=256 (max_partials)",
        ),
        (
            ReassemblerConfig {
                max_bytes: (256 << 20) + 1,
                ..d
            },
            "max_bytes 268435457 is outside 1..=268435456",
        ),
        (
            ReassemblerConfig {
                max_bytes_per_terminal: 0,
                ..d
            },
            "max_bytes_per_terminal 0 is outside 1..=4194304 (max_bytes)",
        ),
        (
            ReassemblerConfig {
                max_packets: (1 << 20) + 1,
                ..d
            },
            "max_packets 1048577 is outside 1..=1048576",
        ),
        (
            ReassemblerConfig {
                max_packets_per_terminal: 16_385,
                ..d
            },
            "max_packets_per_terminal 16385 is outside 1..=16384 (max_packets)",
        ),
        (
            ReassemblerConfig { timeout_ms: 0, ..d },
            "timeout_ms 0 is outside 1..=3600000",
        ),
    ];
    for (cfg, text) in cases {
        let e = Reassembler::new(cfg).unwrap_err();
        assert!(e.to_string().ends_with(text), "{e} / {text}");
    }
}

// ------------------------------------------------------ randomized sweep

/// Random bytes, mutated valid frames and random chunkings: nothing panics,
/// every decoded frame re-encodes to something that decodes to the same frame,
/// and the stream decoder never buffers past its bound.
fn random_inputs_never_panic() {
    let vectors = all_vectors();
    let mut rng = XorShift(0x0123_4567_89ab_cdef);
    let (mut whole_ok, mut stream_ok, mut stream_err) = (0, 0, 0);
    for round in 0..20_000 {
        let mut input = match round % 5 {
            0 => {
                let n = rng.below(64);
                rng.bytes(n)
            }
            1 => {
                let mut v = vectors[rng.below(vectors.len())].clone();
                for _ in 0..1 + rng.below(4) {
                    let i = rng.below(v.len());
                    v[i] = match rng.below(4) {
                        0 => 0x7e,
                        1 => 0x7d,
                        _ => rng.next() as u8,
                    };
                }
                v
            }
            2 => {
                let mut v = vectors[rng.below(vectors.len())].clone();
                let cut = rng.below(v.len() + 1);
                v.truncate(cut);
                v
            }
            3 => {
                // A random well-formed frame: random header fields and body.
                let version = if rng.below(2) == 0 {
                    Version::V2013
                } else {
                    Version::V2019
                };
                let raw = rng.bytes(version.phone_len());
                let mut h = Header::new(rng.next() as u16, Phone::from_raw(&raw).unwrap(), 0);
                h.serial = rng.next() as u16;
                h.encryption = rng.below(8) as u8;
                if version == Version::V2019 {
                    h.protocol_version = rng.next() as u8;
                }
                if rng.below(3) == 0 {
                    let count = 1 + rng.below(65535) as u16;
                    let index = 1 + rng.below(usize::from(count)) as u16;
                    h.package = Some(Package { count, index });
                }
                let n = rng.below(MAX_BODY_LEN + 1);
                let body = rng.bytes(n);
                let mut v = Vec::new();
                encode_frame(&h, &body, &mut v).unwrap();
                let f = decode_frame(&v).unwrap();
                assert_eq!((&f.header, &f.body), (&h, &body));
                v
            }
            _ => {
                let mut v = vec![0x7e];
                let n = rng.below(40);
                v.extend(rng.bytes(n).iter().map(|b| b & 0x7f | 0x7c));
                v.push(0x7e);
                v
            }
        };
        if rng.below(5) == 0 {
            input.extend(vectors[rng.below(vectors.len())].iter());
        }
        if let Ok(f) = decode_frame(&input) {
            whole_ok += 1;
            let mut again = Vec::new();
            f.encode(&mut again).unwrap();
            assert_eq!(decode_frame(&again).unwrap(), f);
            let _ = f.parse_body();
            let _ = f.header.phone.digits();
        }
        let bound = 16 + rng.below(MAX_FRAME_LEN);
        let mut dec = StreamDecoder::new(bound);
        let mut rest = &input[..];
        while !rest.is_empty() {
            let n = 1 + rng.below(rest.len());
            dec.push(&rest[..n]);
            rest = &rest[n..];
            assert!(dec.buffered_len() <= bound);
            while let Some(r) = dec.next_frame() {
                match r {
                    Ok(f) => {
                        stream_ok += 1;
                        let mut again = Vec::new();
                        f.encode(&mut again).unwrap();
                        assert_eq!(decode_frame(&again).unwrap(), f);
                    }
                    Err(_) => stream_err += 1,
                }
            }
        }
    }
    // The sweep exercised both outcomes, not just one path.
    assert!(whole_ok > 3000, "{whole_ok}");
    assert!(
        stream_ok > 3000 && stream_err > 3000,
        "{stream_ok} {stream_err}"
    );
}

// ---------------------------------------------------------------- the C decoder

/// Through the C ABI: a `lenient` byte other than 0 or 1 (which a C `bool` cannot
/// hold, but garbage can) is refused with the argument named, and the decoder stays
/// strict.
fn c_set_lenient_refuses_a_byte_other_than_0_or_1() {
    use rrpc::ffi::jt808_codec::*;
    use rrpc::ffi::rrpc_status::*;

    use crate::common::ffi::{assert_ok, last_error};

    // A 0x0900 whose phone holds an unescaped 0x7d: strict decoding refuses it.
    let unescaped = hex(
        "7e0900001f4f07788ef87d000cf0230223150215010203013800000c000b029dc58c04b99b60230223171822507e",
    );
    let mut d = std::ptr::null_mut();
    assert_ok(rrpc_jt808_decoder_new(0, &mut d));
    assert_eq!(
        rrpc_jt808_decoder_set_lenient(d, 2),
        RRPC_STATUS_INVALID_ARGUMENT
    );
    let msg = last_error();
    assert!(
        msg.contains("lenient must be 0 (false) or 1 (true), not 2"),
        "{msg}"
    );
    assert_ok(rrpc_jt808_decoder_push(
        d,
        unescaped.as_ptr(),
        unescaped.len(),
    ));
    let mut frame = std::mem::MaybeUninit::<rrpc_jt808_frame>::uninit();
    let mut ready = 0;
    assert_eq!(
        rrpc_jt808_decoder_next(d, frame.as_mut_ptr(), &mut ready),
        RRPC_STATUS_MALFORMED_FRAME,
        "still strict"
    );
    assert_ok(rrpc_jt808_decoder_set_lenient(d, 1));
    assert_ok(rrpc_jt808_decoder_push(
        d,
        unescaped.as_ptr(),
        unescaped.len(),
    ));
    assert_ok(rrpc_jt808_decoder_next(d, frame.as_mut_ptr(), &mut ready));
    assert_eq!(ready, 1);
    assert_ok(rrpc_jt808_decoder_free(d));
}

pub fn tests() -> Vec<crate::common::Test> {
    crate::tests![
        vectors_decode_to_their_fields_and_encode_back,
        vector_8900_2013_traccar_binary_phone,
        real_0900_2019_with_wrong_body_length,
        smallchi_8900_body,
        checksum_byte_is_escaped,
        header_and_body_bytes_are_escaped,
        other_message_ids_pass_through,
        typed_body_errors,
        phone_rules,
        encode_errors,
        header_fields_round_trip,
        bad_checksum,
        invalid_escape,
        lone_escape,
        shorter_than_header,
        body_length_disagrees,
        missing_flags,
        frame_too_long,
        bad_package_fields,
        unescaped_0x7d_from_a_lenient_terminal_is_refused,
        lenient_mode_reads_traccars_unescaped_0x7d_frames,
        stream_split_at_every_offset,
        stream_byte_by_byte_and_random_chunks,
        stream_merged_in_one_push,
        stream_skips_garbage_between_frames,
        stream_oversize_frame_then_good_one,
        stream_reports_bad_frames_and_continues,
        split_exactly_1023_is_one_frame,
        split_1024_is_two_packets,
        split_and_reassemble_long_messages_in_any_order,
        split_rejects_bad_sizes,
        reassembly_errors_and_limits,
        reassembly_bounds_packets_even_when_they_are_empty,
        one_terminal_cannot_take_every_partial_slot,
        reassembly_limits_are_checked_at_config_time,
        random_inputs_never_panic,
        c_set_lenient_refuses_a_byte_other_than_0_or_1,
    ]
}
