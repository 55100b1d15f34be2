//! The `percore` command: parse, validate, launch, print the error chain.
//!
//! Everything else lives in the library modules: `config` (flags, TOML file,
//! environment), `serve` (the daemon), `http` (the HTTP/1.1 service).

use std::process::ExitCode;

use clap::Parser;

mod bench;
mod cache;
mod config;
mod files;
mod http;
mod listing;
mod metrics;
mod serve;
mod store;

/// percore: a thread-per-core io_uring file and object server.
#[derive(Parser, Debug)]
#[command(name = "percore", version, about)]
#[allow(clippy::large_enum_variant, reason = "parsed once at start-up")]
enum Command {
    /// Serve files over HTTP/1.1 on every core.
    Serve(config::RawConfig),
    /// Load-test an HTTP server (percore or any other) from pinned client cores.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let raw = match Command::parse() {
        Command::Serve(raw) => raw,
        Command::Bench(args) => {
            return match bench::run(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("percore bench: {err}");
                    ExitCode::FAILURE
                }
            }
        }
    };
    let config = match config::Config::try_from(raw) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("percore: {err}");
            return ExitCode::from(2);
        }
    };
    match serve::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("percore: {err}");
            let mut source = std::error::Error::source(&*err);
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}
