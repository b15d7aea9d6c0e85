//! Shared state of the intake: one value, cloned into every handler.

use bizcontacts_queue::handler::Registry;
use bizcontacts_queue::ledger::Ledger;
use bizcontacts_queue::Redis;
use bizcontacts_security::PasswordHasherConfig;
use bizcontacts_store::search_pool::SearchPool;
use bizcontacts_store::Store;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub store: Store,
    /// Searches run here, apart from everything else (`store::search_pool`).
    pub search: SearchPool,
    pub redis: Redis,
    /// Job ledger and transport: how requests become jobs.
    pub ledger: Ledger,
    /// The job kinds this build can run.
    pub registry: Registry,
    pub passwords: PasswordHasherConfig,
    /// How long a sign-in session lasts.
    pub session_ttl: chrono::Duration,
    /// The admin dashboard's session cookie is `Secure` (production: the
    /// intake is reached over TLS; locally it is plain HTTP).
    pub secure_cookies: bool,
    /// How long an invitation stays open.
    pub invitation_ttl: chrono::Duration,
    /// Largest JSON body accepted.
    pub json_body_limit: usize,
    /// Largest upload (CSV, API import) accepted.
    pub upload_limit: usize,
    /// Most rows in one API import.
    pub api_import_max_rows: usize,
    /// Largest API import body.
    pub api_import_body_limit: usize,
    /// A body that sends nothing for this long is a 408.
    pub body_idle_timeout: Duration,
    /// A connection must send its request headers within this.
    pub header_read_timeout: Duration,
    /// How long an upload may take in all.
    pub upload_timeout: Duration,
    /// Uploads one tenant may have in flight.
    pub uploads_per_tenant: usize,
    /// Sign-in throttling and the bound on concurrent password hashing.
    pub sign_in: crate::throttle::SignInGuard,
    /// How often workers heartbeat (a worker silent for three is lost).
    pub worker_heartbeat: Duration,
    /// How long after it is asked for a tenant's deletion starts.
    pub deletion_grace: chrono::Duration,
    /// How long a tenant's export stays downloadable.
    pub export_ttl: chrono::Duration,
    /// Stripe, prices, webhook secrets, grace period.
    pub billing: bizcontacts_billing::Billing,
    /// HighLevel: the client, our app, the keys secrets are sealed with.
    pub crm: bizcontacts_highlevel::session::Crm,
    /// The consent pages (`highlevel.authorize_url`, `.whitelabel_authorize_url`).
    pub crm_authorize_url: String,
    pub crm_whitelabel_authorize_url: String,
    /// The keys HighLevel webhooks are checked with.
    pub webhooks: bizcontacts_highlevel::webhook::Verifier,
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
