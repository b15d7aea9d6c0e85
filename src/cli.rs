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
    /// Fill the corpus with realistic demo contacts, through the import path.
    Seed {
        /// How many businesses to generate.
        #[arg(long)]
        contacts: usize,
        /// The tenant whose batch they are (default: a "Demo corpus" tenant).
        #[arg(long)]
        tenant: Option<uuid::Uuid>,
    },
    /// Secrets at rest.
    #[command(subcommand)]
    Secrets(SecretsCommand),
}

#[derive(Subcommand, Debug)]
pub enum SecretsCommand {
    /// Re-seal every stored secret (CRM tokens and keys) with the current
    /// secrets.encryption_key; the old key must be in
    /// secrets.previous_encryption_keys. Prints how many were re-sealed;
    /// afterwards the old key can be dropped.
    Rotate,
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
