//! The send stamp every benchmark body starts with: when the message was (scheduled to be)
//! sent, and by which connection. Binary protocols carry it as 12 little-endian bytes, text
//! protocols as 24 lowercase hex digits; the rest of the body is padding up to the size
//! asked for.

/// When a message was sent, and by whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Send time, [`crate::clock::now_ns`] units. Open-loop workloads write the *scheduled*
    /// time, so a late sender shows up as latency (no coordinated omission).
    pub sent_ns: u64,
    /// Index of the sending connection (so members can skip their own messages).
    pub sender: u32,
}

impl Stamp {
    /// Bytes of a binary stamp.
    pub const BINARY_LEN: usize = 12;
    /// Characters of a text stamp.
    pub const TEXT_LEN: usize = 24;

    /// Append a body of `len` bytes (at least [`Stamp::BINARY_LEN`]): the stamp, then
    /// zeros.
    pub fn write_binary(&self, out: &mut Vec<u8>, len: usize) {
        out.extend_from_slice(&self.sent_ns.to_le_bytes());
        out.extend_from_slice(&self.sender.to_le_bytes());
        out.resize(out.len() + len.saturating_sub(Self::BINARY_LEN), 0);
    }

    /// The stamp at the start of a binary body.
    pub fn read_binary(body: &[u8]) -> Option<Stamp> {
        let sent = body.get(..8)?;
        let sender = body.get(8..12)?;
        Some(Stamp {
            sent_ns: u64::from_le_bytes(sent.try_into().ok()?),
            sender: u32::from_le_bytes(sender.try_into().ok()?),
        })
    }

    /// Append a body of `len` characters (at least [`Stamp::TEXT_LEN`]): the stamp in hex,
    /// then `x`s. Safe inside a JSON string as it is.
    pub fn write_text(&self, out: &mut Vec<u8>, len: usize) {
        write_hex(out, self.sent_ns, 16);
        write_hex(out, u64::from(self.sender), 8);
        out.resize(out.len() + len.saturating_sub(Self::TEXT_LEN), b'x');
    }

    /// The stamp at the start of a text body.
    pub fn read_text(body: &[u8]) -> Option<Stamp> {
        let digits = body.get(..Self::TEXT_LEN)?;
        Some(Stamp {
            sent_ns: read_hex(&digits[..16])?,
            sender: u32::try_from(read_hex(&digits[16..])?).ok()?,
        })
    }
}

fn write_hex(out: &mut Vec<u8>, value: u64, digits: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for i in (0..digits).rev() {
        out.push(HEX[((value >> (i * 4)) & 0xF) as usize]);
    }
}

fn read_hex(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |acc, d| {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            b'A'..=b'F' => d - b'A' + 10,
            _ => return None,
        };
        Some(acc << 4 | u64::from(v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAMP: Stamp = Stamp {
        sent_ns: 0x0123_4567_89ab_cdef,
        sender: 0xfedc_ba98,
    };

    #[test]
    fn binary_stamps_round_trip_and_pad() {
        let mut body = Vec::new();
        STAMP.write_binary(&mut body, 32);
        assert_eq!(body.len(), 32);
        assert_eq!(Stamp::read_binary(&body), Some(STAMP));
        let mut short = Vec::new();
        STAMP.write_binary(&mut short, 1);
        assert_eq!(
            short.len(),
            Stamp::BINARY_LEN,
            "never shorter than the stamp"
        );
        assert_eq!(Stamp::read_binary(&short[..11]), None);
    }

    #[test]
    fn text_stamps_round_trip_and_pad() {
        let mut body = Vec::new();
        STAMP.write_text(&mut body, 1024);
        assert_eq!(body.len(), 1024);
        assert_eq!(&body[..24], b"0123456789abcdeffedcba98");
        assert!(body[24..].iter().all(|b| *b == b'x'));
        assert_eq!(Stamp::read_text(&body), Some(STAMP));
        assert_eq!(Stamp::read_text(b"0123456789abcdeffedcba9"), None);
        assert_eq!(Stamp::read_text(b"0123456789abcdeffedcba9\""), None);
    }
}
