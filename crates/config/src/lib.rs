//! Typed configuration of the platform.
//!
//! Layers, later wins: `config/base.yaml`, then `config/<environment>.yaml`
//! (`BIZCONTACTS_ENV`, default `local`), then `BIZCONTACTS__SECTION__KEY`
//! environment variables, then the operations contract's `DATABASE_URL`,
//! `REDIS_URL` and `BIZCONTACTS_HTTP_ADDR`. The yaml files are compiled into the
//! binary so it runs from any directory with the same defaults.
//!
//! Connection URLs can carry passwords, so they are [`SecretString`]s: their
//! `Debug` prints `[REDACTED]` and reading them takes an explicit
//! `expose_secret()`.

use secrecy::SecretString;
use serde::Deserialize;
use std::net::SocketAddr;

pub use secrecy::ExposeSecret;

const BASE: &str = include_str!("../../../config/base.yaml");
const ENVIRONMENTS: &[(&str, &str)] = &[
    ("local", include_str!("../../../config/local.yaml")),
    (
        "production",
        include_str!("../../../config/production.yaml"),
    ),
    ("test", include_str!("../../../config/test.yaml")),
];

/// On a developer machine (`local`), read after the yaml layers when it
/// exists: `bizcontacts dev` keeps the secrets key it made here. Relative to
/// the working directory (the repository, for `scripts/dev`).
pub const LOCAL_SECRETS_FILE: &str = "config/local.secrets.yaml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown environment {0:?} in BIZCONTACTS_ENV; expected local, production or test")]
    UnknownEnvironment(String),
    #[error("invalid configuration: {0}")]
    Invalid(#[from] config::ConfigError),
    #[error("invalid configuration: {0}")]
    Value(String),
}

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// Which per-environment file was applied.
    #[serde(default)]
    pub environment: String,
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub auth: AuthSettings,
    pub log: LogSettings,
    pub demo: DemoSettings,
    pub jobs: JobSettings,
    pub worker: WorkerSettings,
    pub imports: ImportSettings,
    pub dedupe: DedupeSettings,
    pub highlevel: HighLevelSettings,
    pub stripe: StripeSettings,
    pub billing: BillingSettings,
    pub retention: RetentionSettings,
    pub secrets: SecretsSettings,
}

/// Stripe: where its API is, our secret key, the endpoint secrets its
/// webhooks are signed with, and the price of each paid package. Outside
/// checks point these at their own fakes (`BIZCONTACTS__STRIPE__API_BASE_URL`...).
#[derive(Debug, Clone, Deserialize)]
pub struct StripeSettings {
    pub api_base_url: String,
    /// Empty: checkout answers 503 and reconciliation does nothing.
    pub secret_key: SecretString,
    /// Every secret a webhook may be signed with (a list in YAML, or comma
    /// separated in one environment variable), so a secret can roll.
    #[serde(deserialize_with = "one_or_many")]
    pub webhook_secret: Vec<SecretString>,
    pub prices: StripePrices,
    /// Seconds a request to Stripe may take.
    pub timeout_secs: u64,
}

/// The Stripe price id of each paid package (empty: not sold).
#[derive(Debug, Clone, Deserialize)]
pub struct StripePrices {
    pub starter: String,
    pub pro: String,
    pub enterprise: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BillingSettings {
    /// Days a tenant keeps its package once a payment fails.
    pub grace_days: u32,
    /// Where Stripe's Checkout sends the browser after paying / giving up
    /// (Stripe puts the session id in place of `{CHECKOUT_SESSION_ID}`).
    pub success_url: String,
    pub cancel_url: String,
}

/// How long records are kept (the `retention` job; finished jobs:
/// `jobs.retention_days`).
#[derive(Debug, Clone, Deserialize)]
pub struct RetentionSettings {
    pub audit_days: u32,
    /// Upload bytes of failed or cancelled batches (rows stay).
    pub uploads_days: u32,
    /// Rejected staged rows, after their decision.
    pub rejected_rows_days: u32,
    /// HighLevel and Stripe webhook records, CRM contact events.
    pub webhook_days: u32,
    /// Expired sessions, invitations and OAuth states, after they expired.
    pub expired_days: u32,
    /// Rows per delete (each its own transaction).
    pub chunk_rows: i64,
    /// Days a tenant's export stays downloadable.
    pub export_days: u32,
    /// Days between a tenant's deletion being asked for and its start.
    pub deletion_grace_days: u32,
}

/// A list of secrets from a YAML list or one comma-separated string (an
/// environment variable); empty entries are dropped.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<SecretString>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let values = match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s.split(',').map(str::to_string).collect(),
        OneOrMany::Many(v) => v,
    };
    Ok(values
        .into_iter()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .map(SecretString::from)
        .collect())
}

/// HighLevel (the CRM): where its API and consent screens are, our app's
/// credentials, and the keys its webhooks are signed with. Outside checks
/// point these at their own fakes (`BIZCONTACTS__HIGHLEVEL__API_BASE_URL`...).
#[derive(Debug, Clone, Deserialize)]
pub struct HighLevelSettings {
    pub api_base_url: String,
    pub authorize_url: String,
    pub whitelabel_authorize_url: String,
    pub client_id: String,
    pub client_secret: SecretString,
    /// Where HighLevel sends the browser back; empty means
    /// `<public_url>/v1/crm/oauth/callback`.
    pub redirect_url: String,
    /// PEM of the RSA key `x-wh-signature` is checked with.
    pub webhook_rsa_public_key: String,
    /// PEM of the Ed25519 key `x-ghl-signature` is checked with; empty: none.
    pub webhook_ed25519_public_key: String,
    /// Seconds a request to HighLevel may take.
    pub timeout_secs: u64,
    /// Requests per Location within `burst_window_ms`, across every worker.
    pub burst_limit: u32,
    pub burst_window_ms: u64,
    /// Requests per Location per UTC day.
    pub daily_limit: u32,
}

/// Keys of secrets at rest.
#[derive(Debug, Clone, Deserialize)]
pub struct SecretsSettings {
    /// Base64 of 32 bytes: the AES-256-GCM key new ciphertexts are sealed
    /// with. Empty: `dev` makes one; production refuses to start.
    pub encryption_key: SecretString,
    /// Earlier keys, comma separated, still accepted for opening (until
    /// `bizcontacts secrets rotate` has re-sealed everything).
    pub previous_encryption_keys: SecretString,
}

/// Matching model, thresholds and chunking of the dedupe job (crates/matching).
#[derive(Debug, Clone, Deserialize)]
pub struct DedupeSettings {
    /// Match probability at or above which two records are merged without asking.
    pub merge_probability: f64,
    /// Match probability at or above which (below `merge_probability`) a
    /// reviewer decides.
    pub possible_probability: f64,
    /// A blocking key shared by more contacts than this finds no candidates
    /// (a shared switchboard, a common name in a big postcode): comparing
    /// with all of them would cost more than it could find.
    pub max_block_size: usize,
    /// m/u parameters from `bizcontacts-bench dedupe-train`; none: the
    /// built-in estimate (`crates/matching/src/model.rs`).
    #[serde(default)]
    pub model: Option<bizcontacts_matching::Model>,
    /// A YAML file holding `model:` as `dedupe-train --model-out` writes it
    /// (easier to hand over than nested lists in environment variables);
    /// it takes the place of `model`. Empty: none.
    #[serde(default)]
    pub model_file: String,
    /// Rows (or contacts, when sweeping) per transaction.
    pub chunk_rows: i64,
    /// Blocking keys filed in the small recent level before they move, in
    /// one sorted pass, into the big one (`contact_keys_recent`'s migration
    /// says why). Larger: fewer moves, each touching the whole big index;
    /// smaller: a recent level that stays in shared buffers.
    pub recent_keys_max: i64,
    /// Names counted fewer times (contacts; places for a company name) are
    /// not kept as frequent: at most contacts / min_count values per field.
    pub term_frequency_min_count: u64,
    /// Term frequencies older than this are counted again by the next
    /// dedupe job (a count streams every active contact once).
    pub term_frequency_max_age_secs: u64,
    /// Read and plan a batch's next chunk while the current one writes, on
    /// a second database connection (`jobs/dedupe_chunk.rs`): the plan is
    /// the same as reading after the commit; off, each chunk is read after
    /// the one before has committed.
    pub read_ahead: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ImportSettings {
    /// Largest CSV upload (and API import body) accepted, in bytes.
    pub max_upload_bytes: usize,
    /// Most rows one `POST /imports` call may carry.
    pub api_max_rows: usize,
    /// Largest `POST /imports` JSON body, in bytes: it is parsed in memory,
    /// so it is bounded far below a streamed CSV upload.
    pub api_max_body_bytes: usize,
    /// Uploads (CSV or API import) one tenant may have in flight at once;
    /// the next one is a 429 naming this limit.
    pub max_concurrent_uploads_per_tenant: usize,
    /// An upload that has not finished after this long is ended (408).
    pub upload_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct JobSettings {
    pub lease_secs: u64,
    pub heartbeat_secs: u64,
    /// apalis's own worker heartbeat.
    pub transport_heartbeat_ms: u64,
    pub relay_interval_ms: u64,
    pub push_grace_secs: u64,
    pub stale_push_secs: u64,
    pub retention_days: u64,
    pub shutdown_timeout_secs: u64,
    pub claim_batch: usize,
    pub poll_interval_ms: u64,
    pub default_concurrency: usize,
    /// Per kind; kinds not listed use `default_concurrency`.
    #[serde(default)]
    pub concurrency: std::collections::BTreeMap<String, usize>,
}

impl JobSettings {
    pub fn concurrency_of(&self, kind: &str) -> usize {
        self.concurrency
            .get(kind)
            .copied()
            .unwrap_or(self.default_concurrency)
            .max(1)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct WorkerSettings {
    pub http_addr: SocketAddr,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HttpSettings {
    pub addr: SocketAddr,
    pub public_url: String,
    pub json_body_limit_bytes: usize,
    pub shutdown_timeout_secs: u64,
    /// A request body that sends nothing for this long is ended with a 408.
    pub body_idle_timeout_secs: u64,
    /// A client that has not sent its request headers after this long is
    /// disconnected.
    pub header_read_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    pub url: SecretString,
    pub max_connections: u32,
    pub acquire_timeout_secs: u64,
    /// The intake's pool for searches, apart from `max_connections`: how
    /// many searches run at once (more wait for a connection).
    pub search_max_connections: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RedisSettings {
    pub url: SecretString,
    pub key_prefix: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    pub session_ttl_secs: i64,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    /// Wrong passwords an account may get before sign-in backs off.
    pub login_free_failures: u32,
    /// Wrong passwords (to any account) one client address may send before
    /// its sign-ins back off.
    pub login_address_free_failures: u32,
    /// First back-off; it doubles with every further failure.
    pub login_backoff_base_ms: u64,
    /// Longest back-off.
    pub login_backoff_max_secs: u64,
    /// Failures are forgotten this long after the last one.
    pub login_failure_window_secs: u64,
    /// Password hashes computed at once; sign-ins beyond wait for a turn.
    pub max_concurrent_hashes: usize,
    /// An invitation not accepted within this many hours expires.
    pub invitation_ttl_hours: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    pub format: LogFormat,
    pub filter: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DemoSettings {
    pub tenant_name: String,
    pub admin_email: String,
    pub package: String,
    /// Contacts `dev` seeds into an empty corpus on start (0: none).
    pub corpus_contacts: usize,
}

/// The `model:` of a YAML file (`dedupe.model_file`).
fn read_model(path: &str) -> Result<bizcontacts_matching::Model, ConfigError> {
    let file = config::Config::builder()
        .add_source(config::File::new(path, config::FileFormat::Yaml))
        .build()
        .map_err(|e| ConfigError::Value(format!("dedupe.model_file {path:?}: {e}")))?;
    file.get("model")
        .map_err(|e| ConfigError::Value(format!("dedupe.model_file {path:?}: {e}")))
}

impl Settings {
    /// Load for the environment named by `BIZCONTACTS_ENV` (default `local`).
    pub fn load() -> Result<Self, ConfigError> {
        let env = std::env::var("BIZCONTACTS_ENV").unwrap_or_else(|_| "local".into());
        Self::load_from(&env, |k| std::env::var(k).ok(), true)
    }

    /// Load for an explicit environment, reading overrides through `var`. Process
    /// environment variables (`BIZCONTACTS__...`) are applied only when
    /// `process_env` is set, so tests can build settings without inheriting them.
    pub fn load_from(
        environment: &str,
        var: impl Fn(&str) -> Option<String>,
        process_env: bool,
    ) -> Result<Self, ConfigError> {
        let layer = ENVIRONMENTS
            .iter()
            .find(|(name, _)| *name == environment)
            .map(|(_, text)| *text)
            .ok_or_else(|| ConfigError::UnknownEnvironment(environment.into()))?;
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(BASE, config::FileFormat::Yaml))
            .add_source(config::File::from_str(layer, config::FileFormat::Yaml))
            .set_override("environment", environment)?;
        if environment == "local" && process_env {
            builder = builder.add_source(
                config::File::new(LOCAL_SECRETS_FILE, config::FileFormat::Yaml).required(false),
            );
        }
        if process_env {
            builder = builder.add_source(
                config::Environment::with_prefix("BIZCONTACTS")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true),
            );
        }
        builder = builder
            .set_override_option("database.url", var("DATABASE_URL"))?
            .set_override_option("redis.url", var("REDIS_URL"))?
            .set_override_option("http.addr", var("BIZCONTACTS_HTTP_ADDR"))?;
        let mut settings: Settings = builder.build()?.try_deserialize()?;
        if !settings.dedupe.model_file.is_empty() {
            settings.dedupe.model = Some(read_model(&settings.dedupe.model_file)?);
        }
        settings.check()?;
        Ok(settings)
    }

    /// What deserializing alone cannot refuse.
    fn check(&self) -> Result<(), ConfigError> {
        let d = &self.dedupe;
        let unit = |p: f64| p > 0.0 && p < 1.0;
        if !unit(d.merge_probability)
            || !unit(d.possible_probability)
            || d.possible_probability > d.merge_probability
        {
            return Err(ConfigError::Value(
                "dedupe: 0 < possible_probability <= merge_probability < 1".into(),
            ));
        }
        if let Some(model) = &d.model {
            model
                .check()
                .map_err(|e| ConfigError::Value(format!("dedupe.model: {e}")))?;
        }
        Ok(())
    }

    /// Where HighLevel sends the browser back after consent.
    pub fn highlevel_redirect_url(&self) -> String {
        if self.highlevel.redirect_url.is_empty() {
            format!("{}/v1/crm/oauth/callback", self.public_url())
        } else {
            self.highlevel.redirect_url.clone()
        }
    }

    /// The base URL clients should use.
    pub fn public_url(&self) -> String {
        if self.http.public_url.is_empty() {
            format!("http://{}", self.http.addr)
        } else {
            self.http.public_url.trim_end_matches('/').to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_work_on_a_developer_machine() {
        let s = Settings::load_from("local", |_| None, false).unwrap();
        assert_eq!(s.http.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(
            s.database.url.expose_secret(),
            "postgres://postgres@127.0.0.1:5432/bizcontacts"
        );
        assert_eq!(s.redis.url.expose_secret(), "redis://127.0.0.1:6379");
        assert_eq!(s.log.format, LogFormat::Pretty);
    }

    #[test]
    fn contract_variables_override_files() {
        let s = Settings::load_from(
            "production",
            |k| match k {
                "DATABASE_URL" => Some("postgres://app:hunter2@db/x".into()),
                "BIZCONTACTS_HTTP_ADDR" => Some("0.0.0.0:9000".into()),
                _ => None,
            },
            false,
        )
        .unwrap();
        assert_eq!(s.http.addr.port(), 9000);
        assert_eq!(s.log.format, LogFormat::Json);
        // The password in the URL never reaches Debug output.
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn a_model_file_reads_what_dedupe_train_writes() {
        let model = bizcontacts_matching::Model::default();
        let path = std::env::temp_dir().join(format!("model-{}.yaml", std::process::id()));
        std::fs::write(&path, bizcontacts_matching::train::to_yaml(&model)).unwrap();
        let read = read_model(path.to_str().unwrap()).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(read, model);
        assert!(matches!(
            read_model("/nonexistent/model.yaml"),
            Err(ConfigError::Value(_))
        ));
    }

    #[test]
    fn unknown_environment_is_an_error() {
        assert!(matches!(
            Settings::load_from("staging", |_| None, false),
            Err(ConfigError::UnknownEnvironment(_))
        ));
    }
}
