//! The protocol's tests: golden vectors, round trips, and property tests of decoding and
//! of the compact codec. One module per behaviour, all in one binary (one link, not five).

mod strategies;

mod compact_codec;
mod decode_never_panics;
mod decode_props;
mod golden;
mod round_trip;
