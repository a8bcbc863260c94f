//! The server's WebSocket reader, fed arbitrary bytes cut into arbitrary chunks, must never
//! panic, must read the same messages (and the same error) whether the bytes come in one
//! piece or in chunks, and must never return a message over its limit.
//!
//! Input: one byte picking the limit, four bytes giving chunk sizes (cycled), then the
//! bytes a client sends.

#![no_main]

use libfuzzer_sys::fuzz_target;

/// Limits to read with: none, around the 125 bytes of a control frame, the 16-bit and
/// 64-bit length forms, the default `max_frame` (64 KiB) and more.
const LIMITS: [usize; 8] = [0, 1, 125, 126, 1000, 0xFFFF, 0x10000, 1 << 20];

/// A chunk size from one byte: 0 to 127 bytes, or a multiple of 512 up to 65024.
fn chunk_size(byte: u8) -> usize {
    match byte {
        0..0x80 => usize::from(byte),
        _ => usize::from(byte & 0x7F) * 512,
    }
}

fuzz_target!(|data: &[u8]| {
    let [pick, a, b, c, d, stream @ ..] = data else {
        return;
    };
    let max = LIMITS[usize::from(pick % 8)];
    let sizes = [*a, *b, *c, *d].map(chunk_size);
    chorus_server::fuzzing::ws_reader(stream, &sizes, max);
});
