//! Thin entry point; everything lives in the library (`src/lib.rs`).

use bizcontacts::{cli, commands};
use clap::Parser;
use std::process::ExitCode;

/// mimalloc rather than glibc malloc: see the workspace manifest.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let tokio = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match tokio.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, redacted: errors can quote connection strings.
            let line = format!("{e:#}").replace('\n', " ");
            eprintln!("error: {}", bizcontacts_telemetry::redact(&line));
            ExitCode::FAILURE
        }
    }
}
