//! Frames out of a TCP byte stream: chunks split or merge frames at any byte,
//! and terminals send noise between frames.

use std::collections::VecDeque;

use super::codec::{
    decode_frame_limited, DecodeError, DecodeErrorKind, Escapes, Frame, FLAG, MAX_FRAME_LEN,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Outside any frame: bytes up to the next 0x7e are skipped, and that 0x7e
    /// is taken as a start flag. After an oversize frame this is also where the
    /// decoder resynchronises.
    Hunting,
    /// `buf` holds the start of a frame (the 0x7e and what followed it).
    InFrame,
}

/// Splits a byte stream into frames and decodes each one.
///
/// [`push`](StreamDecoder::push) takes chunks as they arrive (any size, any
/// split); [`next_frame`](StreamDecoder::next_frame) yields every complete frame
/// in order, or the error that frame has. Bytes before the first 0x7e, and
/// between one frame's end flag and the next start flag, are skipped and
/// counted. A frame longer than `max_frame_len` yields
/// [`DecodeErrorKind::TooLong`] and is dropped; the decoder picks up again at
/// the next 0x7e. The offset in a [`DecodeError`] counts from that frame's
/// start flag. The partial-frame buffer never holds more than `max_frame_len`
/// bytes, and no input makes the decoder panic.
///
/// ```
/// use rrpc::jt808::StreamDecoder;
///
/// let frame = [0x7e, 0x80, 0x01, 0x00, 0x05, 0x01, 0x23, 0x45, 0x67, 0x89, 0x00,
///              0x00, 0x0a, 0x00, 0x64, 0x02, 0x00, 0x00, 0x61, 0x7e];
/// let mut dec = StreamDecoder::default();
/// dec.push(&frame[..7]);
/// assert!(dec.next_frame().is_none());
/// dec.push(&frame[7..]);
/// let f = dec.next_frame().unwrap().unwrap();
/// assert_eq!(f.header.msg_id, 0x8001);
/// ```
#[derive(Debug)]
pub struct StreamDecoder {
    max_frame_len: usize,
    state: State,
    buf: Vec<u8>,
    ready: VecDeque<Result<Frame, DecodeError>>,
    skipped: u64,
    escapes: Escapes,
    lenient_frames: u64,
}

impl Default for StreamDecoder {
    /// A decoder bounded by [`MAX_FRAME_LEN`], the longest frame the standard allows.
    fn default() -> Self {
        StreamDecoder::new(MAX_FRAME_LEN)
    }
}

impl StreamDecoder {
    /// A decoder that refuses escaped frames (flags included) longer than
    /// `max_frame_len` bytes. [`MAX_FRAME_LEN`] admits every frame the standard
    /// allows; a smaller bound suits a link whose frames are known to be short.
    pub fn new(max_frame_len: usize) -> StreamDecoder {
        StreamDecoder {
            max_frame_len,
            state: State::Hunting,
            buf: Vec::new(),
            ready: VecDeque::new(),
            skipped: 0,
            escapes: Escapes::Strict,
            lenient_frames: 0,
        }
    }

    /// A decoder as [`StreamDecoder::new`] that reads 0x7d bytes as `escapes`
    /// says ([`Escapes::Lenient`] for terminals that leave 0x7d unescaped).
    pub fn with_escapes(max_frame_len: usize, escapes: Escapes) -> StreamDecoder {
        StreamDecoder {
            escapes,
            ..StreamDecoder::new(max_frame_len)
        }
    }

    /// Changes how the frames that complete from now on read 0x7d bytes.
    pub fn set_escapes(&mut self, escapes: Escapes) {
        self.escapes = escapes;
    }

    /// The escape mode given to [`StreamDecoder::with_escapes`].
    pub fn escapes(&self) -> Escapes {
        self.escapes
    }

    /// Frames that decoded only in the lenient reading (unescaped 0x7d).
    pub fn lenient_frames(&self) -> u64 {
        self.lenient_frames
    }

    /// The bound given to [`StreamDecoder::new`].
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// Bytes skipped so far outside frames (before the first 0x7e, between
    /// frames, and after an oversize frame up to the next 0x7e).
    pub fn skipped_bytes(&self) -> u64 {
        self.skipped
    }

    /// Bytes of an unfinished frame held for the next chunk.
    pub fn buffered_len(&self) -> usize {
        self.buf.len()
    }

    /// Frames (and errors) decoded and not yet taken by `next_frame`.
    pub fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// Drops any unfinished frame and undelivered results (after a reconnect).
    pub fn reset(&mut self) {
        self.state = State::Hunting;
        self.buf.clear();
        self.ready.clear();
    }

    /// The next complete frame in stream order, or its decoding error; `None`
    /// when no complete frame is waiting.
    pub fn next_frame(&mut self) -> Option<Result<Frame, DecodeError>> {
        self.ready.pop_front()
    }

    fn too_long(&mut self) {
        self.ready.push_back(Err(DecodeError {
            offset: self.max_frame_len,
            kind: DecodeErrorKind::TooLong {
                max: self.max_frame_len,
            },
        }));
    }

    fn finish(&mut self, frame: &[u8]) {
        let r = decode_frame_limited(frame, self.max_frame_len, self.escapes);
        let r = r.map(|(f, lenient)| {
            self.lenient_frames += u64::from(lenient);
            f
        });
        self.ready.push_back(r);
    }

    /// Feeds the next chunk of the stream. Complete frames are decoded at once
    /// and wait for [`StreamDecoder::next_frame`].
    pub fn push(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match self.state {
                State::Hunting => {
                    let Some(start) = find_flag(data) else {
                        self.skipped += data.len() as u64;
                        return;
                    };
                    self.skipped += start as u64;
                    data = &data[start..];
                    // data[0] is a start flag; a whole frame may sit in this chunk.
                    match find_flag(&data[1..]) {
                        Some(0) => {
                            // "7e 7e": the first flag closes nothing we hold; the
                            // second may open the next frame.
                            self.skipped += 1;
                            data = &data[1..];
                            self.state = State::Hunting;
                        }
                        Some(j) => {
                            let end = j + 1;
                            if end + 1 > self.max_frame_len {
                                self.too_long();
                                // The closing flag may be the next frame's start.
                                self.skipped += end as u64;
                                data = &data[end..];
                                self.state = State::Hunting;
                            } else {
                                self.finish(&data[..=end]);
                                data = &data[end + 1..];
                                self.state = State::Hunting;
                            }
                        }
                        None => {
                            if data.len() > self.max_frame_len {
                                self.too_long();
                                self.skipped += data.len() as u64;
                                self.state = State::Hunting;
                            } else {
                                self.buf.clear();
                                self.buf.extend_from_slice(data);
                                self.state = State::InFrame;
                            }
                            return;
                        }
                    }
                }
                State::InFrame => match find_flag(data) {
                    Some(0) if self.buf.len() == 1 => {
                        // "7e 7e" across chunks: restart at the second flag.
                        self.skipped += 1;
                        self.buf.clear();
                        self.state = State::Hunting;
                    }
                    Some(j) => {
                        if self.buf.len() + j + 1 > self.max_frame_len {
                            self.too_long();
                            self.skipped += (self.buf.len() + j) as u64;
                            self.buf.clear();
                            data = &data[j..];
                            self.state = State::Hunting;
                        } else {
                            let mut frame = std::mem::take(&mut self.buf);
                            frame.extend_from_slice(&data[..=j]);
                            self.finish(&frame);
                            frame.clear();
                            self.buf = frame; // keep the allocation
                            data = &data[j + 1..];
                            self.state = State::Hunting;
                        }
                    }
                    None => {
                        if self.buf.len() + data.len() > self.max_frame_len {
                            self.too_long();
                            self.skipped += (self.buf.len() + data.len()) as u64;
                            self.buf.clear();
                            self.state = State::Hunting;
                        } else {
                            self.buf.extend_from_slice(data);
                        }
                        return;
                    }
                },
            }
        }
    }
}

fn find_flag(data: &[u8]) -> Option<usize> {
    data.iter().position(|&b| b == FLAG)
}
