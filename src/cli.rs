//! Command line: subcommands and their flags.

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "bizcontacts", version, about = "Business Contacts platform")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Apply database migrations (creates the database if missing).
    Migrate,
    /// Run the HTTP intake.
    Serve,
    /// Run job workers for every kind.
    Worker,
    /// Fire periodic jobs (quota reset, billing reconciliation, nightly CRM pulls).
    Scheduler,
    /// Everything in one process on local defaults, with a demo tenant.
    Dev,
    /// Tenant administration.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// User administration.
    #[command(subcommand)]
    User(UserCommand),
    /// API key administration.
    #[command(subcommand, name = "api-key")]
    ApiKey(ApiKeyCommand),
    /// Benchmarks (build with `--features bench`).
    #[cfg(feature = "bench")]
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[cfg(feature = "bench")]
#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// End-to-end no-op job throughput and enqueue-to-start latency, with real
    /// worker processes, on a scratch database and Redis prefix.
    Jobs {
        /// Jobs for the throughput run.
        #[arg(long, default_value_t = 50_000)]
        jobs: usize,
        /// Worker processes to start.
        #[arg(long, default_value_t = 1)]
        workers: usize,
        /// Concurrency per kind in each worker.
        #[arg(long, default_value_t = 256)]
        concurrency: usize,
        /// Offered load of the latency run, jobs per second.
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        /// Length of the latency run, seconds.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// A generated CSV (5% invalid rows) from upload to all rows staged, beside
    /// a plain COPY of the same file; reports rows/s and the worker's peak memory.
    Import {
        /// Rows in the generated file.
        #[arg(long, default_value_t = 1_000_000)]
        rows: usize,
    },
    /// Labelled contacts with injected duplicates through the dedupe job;
    /// reports precision, recall and F1 of the merge pairs.
    DedupeQuality {
        /// Distinct businesses generated (records are about 1.5 times as many).
        #[arg(long, default_value_t = 50_000)]
        entities: usize,
    },
    /// Dedupe speed: a corpus built from `corpus` rows, then `rows` approved
    /// rows (half variants of corpus contacts) deduplicated against it.
    Dedupe {
        #[arg(long, default_value_t = 1_000_000)]
        corpus: usize,
        #[arg(long, default_value_t = 1_000_000)]
        rows: usize,
    },
}

#[derive(Subcommand, Debug)]
pub enum TenantCommand {
    /// Create a tenant; prints its id.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "free")]
        package: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user (optionally a member of a tenant); prints the user id.
    Create(UserCreate),
    /// Grant a system role; prints the user id.
    GrantSystemRole {
        #[arg(long)]
        email: String,
        #[arg(long)]
        role: String,
    },
}

#[derive(Args, Debug)]
pub struct UserCreate {
    #[arg(long)]
    pub email: String,
    /// The first password (or set BIZCONTACTS_PASSWORD to keep it out of `ps`).
    #[arg(long, env = "BIZCONTACTS_PASSWORD", hide_env_values = true)]
    pub password: String,
    #[arg(long, requires = "role")]
    pub tenant: Option<String>,
    #[arg(long, requires = "tenant")]
    pub role: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum ApiKeyCommand {
    /// Create an API key; prints the key (shown once).
    Create {
        /// Tenant the key acts in; omit for a system-role key (admin routes).
        #[arg(long)]
        tenant: Option<String>,
        /// The user who owns the key.
        #[arg(long)]
        email: String,
        /// Comma-separated scopes; default: every permission the owner holds.
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
        #[arg(long, default_value = "cli")]
        name: String,
    },
}
