//! `bizcontacts`: the one binary of the platform.
//!
//! `serve` runs the HTTP intake, `worker` the job workers, `scheduler` the
//! periodic jobs, `dev` all three in one process on local defaults (creating the
//! database and a demo tenant on first start). Admin commands print only the id
//! or key they create, so scripts can capture them. See `cli.rs` for the full
//! list and `shared/spec/api.md` (operations contract) for what is stable.

mod cli;
mod commands;
mod runtime;

use clap::Parser;
use std::process::ExitCode;

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
