//! Arbitrary bytes through the JT/T 808 decoders.
//!
//! Input layout: byte 0 picks the stream decoder's bound (16 to 4096 bytes),
//! byte 1 how many chunk-size bytes follow (1 to 8, low 3 bits) and whether
//! the stream decoder is lenient (bit 7), then those bytes give the sizes of
//! the chunks (1 to 256) pushed in turn; the rest is the stream.
//!
//! Checked: nothing panics; the partial-frame buffer never exceeds the bound;
//! every frame that decodes (whole, strictly or leniently, or out of the
//! stream) re-encodes to bytes that decode strictly to the same header and
//! body; a frame the strict decoder takes, the lenient one takes unchanged;
//! and an input that is exactly one valid frame comes out of the stream
//! decoder, strict or lenient, as that frame.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rrpc::jt808::{decode_frame, decode_frame_lenient, Escapes, Frame, StreamDecoder};

fn round_trip(f: &Frame) {
    let mut wire = Vec::new();
    f.encode(&mut wire).expect("a decoded frame re-encodes");
    let again = decode_frame(&wire).expect("a re-encoded frame decodes");
    assert_eq!(again.header, f.header);
    assert_eq!(again.body, f.body);
    let _ = f.parse_body();
    let _ = f.header.phone.digits();
    let _ = f.checksum();
}

fuzz_target!(|data: &[u8]| {
    let (bound, escapes, sizes, stream) = match data {
        [b, k, rest @ ..] => {
            let escapes = if k & 0x80 != 0 {
                Escapes::Lenient
            } else {
                Escapes::Strict
            };
            let k = 1 + usize::from(*k % 8);
            let k = k.min(rest.len());
            let (sizes, stream) = rest.split_at(k);
            (16 + usize::from(*b) * 16, escapes, sizes, stream)
        }
        _ => (64, Escapes::Strict, &[][..], data),
    };

    let whole = decode_frame(stream);
    if let Ok(f) = &whole {
        round_trip(f);
    }
    let lenient = decode_frame_lenient(stream);
    if let Ok(f) = &lenient {
        round_trip(f);
    }
    if let Ok(f) = &whole {
        assert_eq!(lenient.as_ref().ok(), Some(f));
    }
    // The same bytes, whole, as a frame of their own.
    let _ = decode_frame(data);

    let mut dec = StreamDecoder::with_escapes(bound, escapes);
    let mut out = Vec::new();
    let mut rest = stream;
    let mut i = 0;
    while !rest.is_empty() {
        let n = if sizes.is_empty() {
            rest.len()
        } else {
            1 + usize::from(sizes[i % sizes.len()])
        };
        let n = n.min(rest.len());
        dec.push(&rest[..n]);
        rest = &rest[n..];
        i += 1;
        assert!(dec.buffered_len() <= bound);
        while let Some(r) = dec.next_frame() {
            if let Ok(f) = &r {
                round_trip(f);
            }
            out.push(r);
        }
    }
    if let Ok(f) = whole {
        if stream.len() <= bound {
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].as_ref().ok(), Some(&f));
        }
    }
});
