//! `chorus-bench`: see the library's documentation, or `chorus-bench --help`.

fn main() -> std::process::ExitCode {
    chorus_bench::cli::main()
}
