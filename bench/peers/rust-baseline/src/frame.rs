//! Where the baseline's server frames are built: a per-thread arena, so that a frame costs
//! no allocation of its own. The framing itself (headers, masking, close payloads) is
//! `chorus-framing`'s, the same as the server's.

use std::cell::RefCell;

use bytes::{Bytes, BytesMut};
use chorus_framing::{self as framing, Opcode};

/// Size of the per-thread chunks server frames are carved from.
const ARENA_CHUNK: usize = 64 * 1024;

thread_local! {
    /// Where this thread builds server frames. Frames are split off it, so a frame costs no
    /// allocation of its own: a chunk is allocated once per 64 KiB of frames and freed when
    /// the last frame cut from it has been written (and dropped) by every recipient.
    static ARENA: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// Builds a complete, final, unmasked server frame: the bytes to write to the socket. The
/// same bytes as [`framing::server_frame`], cut from this thread's arena.
pub(crate) fn server_frame(opcode: Opcode, payload: &[u8]) -> Bytes {
    let total = framing::header_len(payload.len(), false) + payload.len();
    ARENA.with_borrow_mut(|arena| {
        if arena.capacity() < total {
            *arena = BytesMut::with_capacity(total.max(ARENA_CHUNK));
        }
        framing::put_header(arena, true, opcode, payload.len(), None);
        arena.extend_from_slice(payload);
        arena.split().freeze()
    })
}

/// A close frame with `code` and no reason.
pub(crate) fn close_frame(code: u16) -> Bytes {
    server_frame(Opcode::Close, &code.to_be_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arena_frames_are_the_bytes_of_the_shared_framing() {
        for len in [0, 125, 126, 0xFFFF, 0x10000] {
            let payload = vec![0xAB; len];
            assert_eq!(
                server_frame(Opcode::Binary, &payload),
                framing::server_frame(Opcode::Binary, &payload)
            );
        }
        assert_eq!(
            &server_frame(Opcode::Binary, &[1, 2, 3])[..],
            &[0x82, 3, 1, 2, 3]
        );
        assert_eq!(&close_frame(1009)[..], &[0x88, 2, 0x03, 0xF1]);
    }

    #[test]
    fn frames_cut_from_the_arena_stay_intact_when_it_moves_on_to_a_new_chunk() {
        let frames: Vec<Bytes> = (0..200u8)
            .map(|i| server_frame(Opcode::Binary, &[i; 1000]))
            .collect();
        for (i, frame) in frames.iter().enumerate() {
            assert_eq!(&frame[..4], &[0x82, 126, 0x03, 0xE8]);
            assert!(frame[4..].iter().all(|&b| b == i as u8));
        }
    }
}
