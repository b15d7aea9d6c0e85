//! One module per subcommand.

mod admin;
mod dev;
mod secrets;
pub mod seed;
mod serve;
pub mod work;

use crate::cli::{Cli, Command, SecretsCommand};
use crate::runtime;
use bizcontacts_config::Settings;
use bizcontacts_domain::TenantId;

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load()?;
    match cli.command {
        Command::Migrate => {
            runtime::init_logging(&settings, None);
            runtime::migrated_store(&settings).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Serve => {
            runtime::init_logging(&settings, None);
            serve::run(&settings).await
        }
        Command::Worker => {
            runtime::init_logging(&settings, None);
            work::worker(&settings).await
        }
        Command::Scheduler => {
            runtime::init_logging(&settings, None);
            work::scheduler(&settings).await
        }
        Command::Dev => {
            runtime::init_logging(&settings, None);
            dev::run(&settings).await
        }
        // Admin commands print their result on stdout: keep logs to warnings.
        Command::Tenant(cmd) => {
            runtime::init_logging(&settings, Some("warn"));
            admin::tenant(&settings, cmd).await
        }
        Command::User(cmd) => {
            runtime::init_logging(&settings, Some("warn"));
            admin::user(&settings, cmd).await
        }
        Command::ApiKey(cmd) => {
            runtime::init_logging(&settings, Some("warn"));
            admin::api_key(&settings, cmd).await
        }
        Command::Seed { contacts, tenant } => {
            runtime::init_logging(&settings, Some("warn"));
            let seeded = seed::run(&settings, contacts, tenant.map(TenantId), true).await?;
            // Like the other admin commands: the id alone on stdout.
            println!("{}", seeded.import_id);
            Ok(())
        }
        Command::Secrets(SecretsCommand::Rotate) => {
            runtime::init_logging(&settings, Some("warn"));
            let n = secrets::rotate(&settings).await?;
            println!("{n}");
            Ok(())
        }
    }
}
