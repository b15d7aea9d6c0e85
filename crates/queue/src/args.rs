//! Typed jobs: one arguments type per kind, shared by whoever enqueues the
//! job (a route, the scheduler, another job) and the worker that runs it (the
//! pattern of River and of crates.io's worker).
//!
//! ```text
//! // where the work is asked for, in the transaction of the write that caused it:
//! let (job, pending) = ledger.enqueue(&mut tx, ImportArgs { import_id }.job().tenant(t).by(user)).await?;
//! tx.commit().await?;
//! ledger.push(pending).await;
//!
//! // where it runs:
//! impl Worker for ImportJob {
//!     type Args = ImportArgs;
//!     async fn work(&self, ctx: &mut JobContext, args: ImportArgs) -> Result<(), JobError> { .. }
//! }
//! ```
//!
//! A [`Worker`] is a [`JobHandler`] (blanket impl): its kind name, retry
//! policy and params check all come from its `Args`, so a route cannot build
//! params the handler would not read.

use crate::handler::{JobContext, JobError, JobHandler, RetryPolicy, Starter};
use crate::job::NewJob;
use bizcontacts_domain::TenantId;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde::Serialize;
use uuid::Uuid;

/// The arguments of one job kind, as stored in the ledger's `params`.
pub trait JobArgs: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The kind's name in the ledger, in URLs and in queue names.
    const KIND: &'static str;

    /// Backoff and attempts of the kind.
    fn retry() -> RetryPolicy;

    /// Rules serde cannot express (fields that go together); checked when
    /// the job is submitted and again before it runs.
    fn check(&self) -> Result<(), String> {
        Ok(())
    }

    /// A new job of this kind with these arguments, of no tenant; refine it
    /// with [`NewJob::tenant`], [`NewJob::by`], [`NewJob::key`].
    fn job(&self) -> NewJob {
        NewJob {
            tenant_id: None,
            kind: Self::KIND.into(),
            params: serde_json::to_value(self).expect("job args serialize to JSON"),
            idempotency_key: None,
            max_attempts: Self::retry().max_attempts,
            run_after: None,
            created_by: None,
        }
    }
}

impl NewJob {
    /// The job runs for (and counts against) this tenant.
    pub fn tenant(mut self, tenant: TenantId) -> Self {
        self.tenant_id = Some(tenant);
        self
    }

    /// Who asked for it (shown in the job's history).
    pub fn by(mut self, user: Uuid) -> Self {
        self.created_by = Some(user);
        self
    }

    /// The same key gives the same job (per tenant).
    pub fn key(mut self, key: Option<String>) -> Self {
        self.idempotency_key = key;
        self
    }

    /// Not before this instant.
    pub fn after(mut self, at: DateTime<Utc>) -> Self {
        self.run_after = Some(at);
        self
    }
}

/// A job kind's worker, typed by its arguments. Implement this; the platform
/// sees it as a [`JobHandler`].
#[async_trait::async_trait]
pub trait Worker: Send + Sync + 'static {
    type Args: JobArgs;

    /// Who may start the kind.
    fn starter(&self) -> Starter;

    /// Run one attempt. Must be idempotent: a worker can die after the work
    /// and before the ledger records it, and the job then runs again.
    async fn work(&self, ctx: &mut JobContext, args: Self::Args) -> Result<(), JobError>;
}

#[async_trait::async_trait]
impl<W: Worker> JobHandler for W {
    fn kind(&self) -> &'static str {
        W::Args::KIND
    }

    fn starter(&self) -> Starter {
        Worker::starter(self)
    }

    fn retry(&self) -> RetryPolicy {
        W::Args::retry()
    }

    fn validate(&self, params: &serde_json::Value) -> Result<(), String> {
        W::Args::deserialize(params)
            .map_err(|e| e.to_string())?
            .check()
    }

    async fn run(&self, ctx: &mut JobContext) -> Result<(), JobError> {
        let args: W::Args = ctx.params()?;
        args.check()
            .map_err(|e| JobError::Permanent(anyhow::anyhow!("invalid params: {e}")))?;
        self.work(ctx, args).await
    }
}
