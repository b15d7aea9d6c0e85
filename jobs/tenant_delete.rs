//! `tenant_delete`: a tenant's deletion, once its grace period is over
//! (scheduled by a platform admin, cancellable until it starts).
//!
//! Steps, each a bounded unit in its own transaction, so a kill -9 anywhere
//! loses nothing and the retry resumes with whatever is still there:
//! 1. The tenant is suspended (its callers refused, its jobs held).
//! 2. Each import batch, one per transaction: withdrawn from the corpus as
//!    a quarantine does (every contact it fed is derived again from the
//!    rows that remain, so a contact only this tenant's batches made leaves
//!    search, and a shared one keeps only the others' values), then deleted
//!    with its staged rows, upload bytes and match candidates.
//! 3. The tenant's rows in unbounded tables, in chunks: jobs (not this
//!    one), audit events, usage, saved contacts, corrections, CRM push and
//!    pull records, contact events, Stripe events.
//! 4. Members who belong nowhere else and hold no system role, then the
//!    tenant's row (its cascade takes memberships, keys, invitations, the
//!    CRM connection with its sealed secrets, billing, exports), with the
//!    closing audit event (the tenant's name and the reason, not its data,
//!    under no tenant) and the job's success in one transaction.
//!
//! A platform job (no tenant of its own), so suspending the tenant does
//! not hold it.
//!
//! Idempotent: a tenant already gone completes at once; a cancelled
//! schedule (no `delete_after`) completes doing nothing.

use async_trait::async_trait;
use bizcontacts_domain::{TenantId, UserId};
use bizcontacts_queue::args::{JobArgs, Worker};
use bizcontacts_queue::handler::{JobContext, JobError, RetryPolicy, Starter};
use bizcontacts_store::audit::{self, Actor, NewEvent};
use bizcontacts_store::{imports, tenant_deletion, tenants, StoreError};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Duration;

/// Rows per chunk in step 3.
const CHUNK: i64 = 5_000;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantDeleteArgs {
    pub tenant_id: TenantId,
}

impl JobArgs for TenantDeleteArgs {
    const KIND: &'static str = "tenant_delete";

    fn retry() -> RetryPolicy {
        RetryPolicy::new(10, Duration::from_secs(30), Duration::from_secs(3600))
    }
}

pub struct TenantDeleteJob;

fn store(e: StoreError) -> JobError {
    JobError::Retryable(e.into())
}

#[async_trait]
impl Worker for TenantDeleteJob {
    type Args = TenantDeleteArgs;

    fn starter(&self) -> Starter {
        Starter::Platform
    }

    async fn work(&self, ctx: &mut JobContext, args: TenantDeleteArgs) -> Result<(), JobError> {
        let tenant = args.tenant_id;
        let pool = ctx.pool().clone();
        let scheduled = tenant_deletion::get(&pool, tenant).await.map_err(store)?;
        let Some(scheduled) = scheduled.filter(|s| s.delete_after.is_some_and(|a| a <= Utc::now()))
        else {
            // Gone already, cancelled, or not due: nothing to do.
            let mut tx = pool.begin().await?;
            ctx.complete_in(&mut tx).await?;
            tx.commit().await?;
            return Ok(());
        };
        let reason = scheduled.delete_reason.clone().unwrap_or_default();
        tenants::suspend(
            &pool,
            tenant,
            "scheduled deletion under way",
            scheduled.delete_requested_by,
        )
        .await
        .map_err(store)?;

        let by = scheduled.delete_requested_by.map(UserId);
        let mut batches = 0u64;
        loop {
            ctx.checkpoint().await?;
            let ids = tenant_deletion::imports(&pool, tenant, 1)
                .await
                .map_err(store)?;
            let Some(id) = ids.first() else { break };
            let mut tx = pool.begin().await?;
            imports::quarantine(&mut tx, *id, by, "tenant deleted")
                .await
                .map_err(store)?;
            tenant_deletion::delete_import(&mut tx, *id)
                .await
                .map_err(store)?;
            tx.commit().await?;
            batches += 1;
        }
        let mut rows = 0u64;
        for table in tenant_deletion::BULK {
            loop {
                ctx.checkpoint().await?;
                let n = tenant_deletion::delete_chunk(&pool, *table, tenant, ctx.job_id, CHUNK)
                    .await
                    .map_err(store)?;
                rows += n;
                if n < CHUNK as u64 {
                    break;
                }
            }
        }
        let mut tx = pool.begin().await?;
        let users = tenant_deletion::delete_sole_members(&mut tx, tenant)
            .await
            .map_err(store)?;
        tenant_deletion::delete_tenant(&mut tx, tenant)
            .await
            .map_err(store)?;
        audit::record(
            &mut *tx,
            NewEvent {
                tenant_id: None,
                actor: Actor::system(),
                action: "tenant.deleted",
                target_type: Some("tenant"),
                target_id: Some(tenant.to_string()),
                details: json!({
                    "tenant_name": scheduled.name,
                    "reason": reason,
                    "import_batches": batches,
                    "rows": rows,
                    "users": users,
                }),
                request_id: None,
            },
        )
        .await
        .map_err(store)?;
        ctx.complete_in(&mut tx).await?;
        tx.commit().await?;
        tracing::info!(tenant_id = %tenant, batches, rows, users, "tenant deleted");
        Ok(())
    }
}
