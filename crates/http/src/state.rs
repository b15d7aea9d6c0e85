//! Shared state of the intake: one value, cloned into every handler.

use bizcontacts_queue::handler::Registry;
use bizcontacts_queue::ledger::Ledger;
use bizcontacts_queue::Redis;
use bizcontacts_security::PasswordHasherConfig;
use bizcontacts_store::Store;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub store: Store,
    pub redis: Redis,
    /// Job ledger and transport: how requests become jobs.
    pub ledger: Ledger,
    /// The job kinds this build can run.
    pub registry: Registry,
    pub passwords: PasswordHasherConfig,
    /// How long a sign-in session lasts.
    pub session_ttl: chrono::Duration,
    /// Largest JSON body accepted.
    pub json_body_limit: usize,
    /// Largest upload (CSV, API import) accepted.
    pub upload_limit: usize,
    /// Most rows in one API import.
    pub api_import_max_rows: usize,
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
