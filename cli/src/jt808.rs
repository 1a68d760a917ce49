//! `rrpc jt808`: decode a JT/T 808 frame to JSON, or encode one from flags.
//!
//! The JSON is written here by hand rather than with serde_json: its values are
//! numbers, hex strings, digit strings and fixed names, so a small writer with
//! string escaping does, and the binary gains no dependency for it.

use std::io::Read;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use rrpc::jt808::{
    decode_frame, encode_frame, passthrough_type_name, Body, Frame, Header, Phone, ResponseResult,
    Version,
};

use crate::json::Obj;
use crate::EXIT_INVALID;

const AFTER_HELP: &str = "\
Examples:
  rrpc jt808 decode 7e80010005012345678900000a0064020000617e
  rrpc jt808 decode '7E 09 00 00 09 00 01 23 45 67 89 00 0A 83 73 6D 61 6C 6C 63 68 69 1D 7E'
  echo 7e0001...7e | rrpc jt808 decode -
  rrpc jt808 encode --msg-id 0x8900 --phone 13800138000 --serial 1 --content-type 0x41 --content-hex 0102
  rrpc jt808 encode --msg-id 0x0001 --phone 13800138000 --version 2019 \\
                    --reply-serial 1 --reply-id 0x8900 --result 0
  rrpc jt808 terminal --connect 127.0.0.1:7808 --phone 13800138000 --count 1000

Exit status of decode and encode: 0 done, 2 invalid input (the reason, with the byte offset for
a bad frame, on stderr). `rrpc jt808 terminal --help` lists the terminal's.";

#[derive(Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub struct Jt808Args {
    #[command(subcommand)]
    pub command: Jt808Command,
}

#[derive(Subcommand, Debug)]
pub enum Jt808Command {
    /// Decode one frame (hex, flags included) and print its fields as one JSON object.
    Decode(DecodeArgs),
    /// Build one frame from flags and print it, escaped, as lower-case hex.
    Encode(EncodeArgs),
    /// Run simulated terminals against an adapter: register, authenticate, answer 0x8900.
    Terminal(crate::jt808_terminal::TerminalArgs),
}

#[derive(Args, Debug)]
pub struct DecodeArgs {
    /// The frame in hex, spaces allowed, from 7e to 7e; `-` reads it from stdin.
    #[arg(value_name = "HEX")]
    pub hex: String,
}

/// The protocol edition, by year.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionArg {
    /// JT/T 808-2013 (6-byte phone).
    #[value(name = "2013")]
    V2013,
    /// JT/T 808-2019 (10-byte phone, protocol-version byte).
    #[value(name = "2019")]
    V2019,
}

// `--version` here is the protocol edition, so the tool-version flag that
// `propagate_version` gives every subcommand is turned off for this one.
#[derive(Args, Debug)]
#[command(disable_version_flag = true)]
pub struct EncodeArgs {
    /// Message id, hex (0x8900) or decimal.
    #[arg(long, value_parser = parse_u16)]
    pub msg_id: u16,
    /// Terminal phone number, digits only (left-padded with zeros).
    #[arg(long)]
    pub phone: String,
    /// Message serial number.
    #[arg(long, default_value_t = 0, value_parser = parse_u16)]
    pub serial: u16,
    /// Protocol edition.
    #[arg(long, value_enum, default_value = "2013")]
    pub version: VersionArg,
    /// The 2019 protocol-version byte (default 1; 2019 only).
    #[arg(long, value_parser = parse_u8)]
    pub protocol_version: Option<u8>,
    /// Encryption bits, 0-7 (0: none, 1: RSA).
    #[arg(long, default_value_t = 0, value_parser = parse_u8)]
    pub encryption: u8,
    /// Pass-through type byte for 0x8900/0x0900 (e.g. 0x41 serial port 1, 0xF0 user-defined).
    #[arg(long, value_parser = parse_u8, conflicts_with = "body_hex")]
    pub content_type: Option<u8>,
    /// Pass-through content after the type byte, hex.
    #[arg(long, requires = "content_type", conflicts_with = "body_hex")]
    pub content_hex: Option<String>,
    /// Serial of the message answered (0x0001/0x8001).
    #[arg(long, value_parser = parse_u16, conflicts_with = "body_hex")]
    pub reply_serial: Option<u16>,
    /// Message id answered (0x0001/0x8001), hex or decimal.
    #[arg(long, value_parser = parse_u16, conflicts_with = "body_hex")]
    pub reply_id: Option<u16>,
    /// Result: 0 ok, 1 failure, 2 message error, 3 not supported, 4 alarm confirmation (0x8001).
    #[arg(long, value_parser = parse_u8, conflicts_with = "body_hex")]
    pub result: Option<u8>,
    /// The whole body, hex, for any message id (instead of the typed flags).
    #[arg(long)]
    pub body_hex: Option<String>,
}

pub fn run(args: Jt808Args) -> ExitCode {
    let r = match args.command {
        Jt808Command::Decode(a) => decode(a),
        Jt808Command::Encode(a) => encode(a),
        Jt808Command::Terminal(a) => return crate::jt808_terminal::run(a),
    };
    match r {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(msg) => {
            eprintln!("rrpc jt808: {msg}");
            ExitCode::from(EXIT_INVALID)
        }
    }
}

fn parse_u16(s: &str) -> Result<u16, String> {
    parse_uint(s).and_then(|v| u16::try_from(v).map_err(|_| format!("{s} does not fit 16 bits")))
}

fn parse_u8(s: &str) -> Result<u8, String> {
    parse_uint(s).and_then(|v| u8::try_from(v).map_err(|_| format!("{s} does not fit 8 bits")))
}

fn parse_uint(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let r = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16),
        None => t.parse(),
    };
    r.map_err(|_| format!("{s:?} is not a number (decimal, or hex with 0x)"))
}

/// Hex digits to bytes; whitespace is ignored anywhere.
fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len() / 2);
    let mut high: Option<u8> = None;
    for (i, c) in s.char_indices() {
        if c.is_whitespace() {
            continue;
        }
        let Some(v) = c.to_digit(16) else {
            return Err(format!(
                "character {i} of the hex input is {c:?}, not a hex digit"
            ));
        };
        let v = v as u8;
        match high.take() {
            None => high = Some(v),
            Some(h) => out.push((h << 4) | v),
        }
    }
    if high.is_some() {
        return Err("odd number of hex digits".to_string());
    }
    Ok(out)
}

fn decode(args: DecodeArgs) -> Result<String, String> {
    let text = if args.hex == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| format!("reading stdin: {e}"))?;
        s
    } else {
        args.hex
    };
    let bytes = parse_hex(&text)?;
    let frame = decode_frame(&bytes).map_err(|e| e.to_string())?;
    frame_json(&frame)
}

fn frame_json(frame: &Frame) -> Result<String, String> {
    let h = &frame.header;
    let mut o = Obj::new();
    o.str("msg_id", &format!("0x{:04x}", h.msg_id));
    o.num("version", h.version.year());
    match h.version {
        Version::V2019 => o.num("protocol_version", h.protocol_version),
        Version::V2013 => o.null("protocol_version"),
    }
    match h.phone.digits() {
        Ok(d) => o.str("phone", &d),
        Err(e) => {
            o.null("phone");
            o.str("phone_error", &e.to_string());
        }
    }
    o.str("phone_raw", &h.phone.raw_hex());
    o.num("serial", h.serial);
    o.num("encryption", h.encryption);
    o.num("body_len", frame.body.len());
    match h.package {
        Some(p) => o.raw(
            "package",
            &format!("{{\"count\":{},\"index\":{}}}", p.count, p.index),
        ),
        None => o.null("package"),
    }
    o.str("checksum", &format!("0x{:02x}", frame.checksum()));
    if h.package.is_some() {
        // One packet of a long message: only the whole message has typed fields.
        o.str("body_hex", &rrpc::encoding::hex(&frame.body));
        return Ok(o.finish());
    }
    match frame
        .parse_body()
        .map_err(|e| format!("message body: {e}"))?
    {
        Body::Passthrough {
            content_type,
            content,
        } => {
            o.num("content_type", content_type);
            match passthrough_type_name(content_type) {
                Some(n) => o.str("content_type_name", n),
                None => o.null("content_type_name"),
            }
            o.str("content_hex", &rrpc::encoding::hex(content));
        }
        Body::GeneralResponse {
            reply_serial,
            reply_id,
            result,
        } => {
            o.num("reply_serial", reply_serial);
            o.str("reply_id", &format!("0x{reply_id:04x}"));
            o.num("result", result.code());
            o.str("result_name", result.name());
        }
        Body::Other(b) => o.str("body_hex", &rrpc::encoding::hex(b)),
    }
    Ok(o.finish())
}

fn encode(a: EncodeArgs) -> Result<String, String> {
    let version = match a.version {
        VersionArg::V2013 => Version::V2013,
        VersionArg::V2019 => Version::V2019,
    };
    let phone = Phone::from_digits(&a.phone, version).map_err(|e| format!("--phone: {e}"))?;
    let mut header = Header::new(a.msg_id, phone, a.serial);
    header.encryption = a.encryption;
    if let Some(pv) = a.protocol_version {
        if version == Version::V2013 {
            return Err("--protocol-version needs --version 2019 (2013 headers carry none)".into());
        }
        header.protocol_version = pv;
    }
    let typed = a.content_type.is_some()
        || a.reply_serial.is_some()
        || a.reply_id.is_some()
        || a.result.is_some();
    let body = if let Some(b) = &a.body_hex {
        parse_hex(b).map_err(|e| format!("--body-hex: {e}"))?
    } else if let Some(t) = a.content_type {
        if a.reply_serial.is_some() || a.reply_id.is_some() || a.result.is_some() {
            return Err("--content-type and --reply-* / --result describe different bodies".into());
        }
        let content = match &a.content_hex {
            Some(c) => parse_hex(c).map_err(|e| format!("--content-hex: {e}"))?,
            None => Vec::new(),
        };
        let mut body = Vec::with_capacity(content.len() + 1);
        Body::Passthrough {
            content_type: t,
            content: &content,
        }
        .write(&mut body);
        body
    } else if typed {
        let (Some(reply_serial), Some(reply_id), Some(result)) =
            (a.reply_serial, a.reply_id, a.result)
        else {
            return Err("a general response needs --reply-serial, --reply-id and --result".into());
        };
        let mut body = Vec::with_capacity(5);
        Body::GeneralResponse {
            reply_serial,
            reply_id,
            result: ResponseResult::from_code(a.msg_id, result),
        }
        .write(&mut body);
        body
    } else {
        match a.msg_id {
            0x8900 | 0x0900 => {
                return Err("a pass-through body needs --content-type (or --body-hex)".into())
            }
            0x0001 | 0x8001 => return Err(
                "a general response needs --reply-serial, --reply-id and --result (or --body-hex)"
                    .into(),
            ),
            _ => Vec::new(),
        }
    };
    let mut out = Vec::new();
    encode_frame(&header, &body, &mut out).map_err(|e| e.to_string())?;
    Ok(rrpc::encoding::hex(&out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_parsing() {
        assert_eq!(
            parse_hex("7e 00\n0A\t7E").unwrap(),
            [0x7e, 0x00, 0x0a, 0x7e]
        );
        assert!(parse_hex("7e0").is_err());
        assert_eq!(
            parse_hex("7e zz").unwrap_err(),
            "character 3 of the hex input is 'z', not a hex digit"
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u16("0x8900"), Ok(0x8900));
        assert_eq!(parse_u16("35072"), Ok(0x8900));
        assert!(parse_u16("0x10000").is_err());
        assert_eq!(parse_u8("0xF0"), Ok(0xf0));
        assert!(parse_u8("256").is_err());
    }
}
