//! The `chorus-server` binary: everything is in [`chorus_server::cli::main`].

use std::process::ExitCode;

/// mimalloc rather than the system allocator: a connection's requests and fan-out allocate
/// and free many small buffers, where glibc's malloc spent about a tenth of the server's CPU
/// (consolidating its fast bins whenever a larger block was asked for).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    chorus_server::cli::main()
}
