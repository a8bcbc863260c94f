//! The `chorus-server` binary: everything is in [`chorus_server::cli::main`].

use std::process::ExitCode;

fn main() -> ExitCode {
    chorus_server::cli::main()
}
