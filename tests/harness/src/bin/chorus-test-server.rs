//! `chorus-server` under another name: the whole server program, built by this crate so that
//! its integration tests always start the current server (`CARGO_BIN_EXE_chorus-test-server`)
//! as a real process of its own.

use std::process::ExitCode;

fn main() -> ExitCode {
    chorus_server::cli::main()
}
