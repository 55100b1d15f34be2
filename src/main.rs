//! The `percore` command; everything lives in the library (`src/lib.rs`).

fn main() -> std::process::ExitCode {
    percore::main()
}
