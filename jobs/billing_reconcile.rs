//! `billing_reconcile`: Stripe's subscriptions against each tenant's
//! package, fixing drift (a webhook that never arrived, a grace period or a
//! manual activation that ended), each fix audited; the counts (checked,
//! in sync, fixed, unknown customer) in the job's progress message and in
//! a closing audit event.
//!
//! Pages of `GET /v1/subscriptions?status=all` (100 each, `starting_after`),
//! each subscription applied to its tenant (named by the subscription's
//! `tenant_id` metadata, which checkout sets, else by its customer) in a
//! transaction of its own, under the tenant's billing row lock, through
//! the same `sync::apply_subscription` webhooks use: so a reconciliation
//! and a webhook never interleave on a tenant, a read older than what a
//! webhook stored is ignored, and an ended subscription never replaces a
//! live one. A manual activation that lasts is left alone (the policy).
//!
//! Idempotent: applying what is already stored changes nothing, so a rerun
//! (a retry after a kill, or two schedulers' runs) only fixes what is still
//! off. Hourly; a platform admin can start one
//! (`POST /v1/admin/billing/reconcile`).

use async_trait::async_trait;
use bizcontacts_billing::types::Subscription;
use bizcontacts_billing::{sync, Applied, Billing, BillingError, Cause};
use bizcontacts_domain::TenantId;
use bizcontacts_queue::args::{JobArgs, Worker};
use bizcontacts_queue::handler::{JobContext, JobError, RetryPolicy, Starter};
use bizcontacts_queue::scheduler::Schedule;
use bizcontacts_store::audit::{self, Actor, NewEvent};
use bizcontacts_store::{billing, tenants, StoreError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// Subscriptions per page (Stripe's largest).
const PAGE: u32 = 100;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillingReconcileArgs {
    /// The scheduled hour, or when an admin asked.
    pub at: DateTime<Utc>,
}

impl JobArgs for BillingReconcileArgs {
    const KIND: &'static str = "billing_reconcile";

    fn retry() -> RetryPolicy {
        RetryPolicy::new(5, Duration::from_secs(30), Duration::from_secs(1800))
    }
}

pub struct BillingReconcileJob(pub Billing);

/// What a run found.
#[derive(Debug, Default, Serialize)]
struct Counts {
    checked: i64,
    in_sync: i64,
    fixed: i64,
    unknown_customer: i64,
    /// Older than what a webhook stored, or replaced by a live subscription.
    superseded: i64,
    /// Tenants whose grace period or manual activation ended.
    deadlines: i64,
}

impl Counts {
    fn message(&self) -> String {
        format!(
            "checked {}, in sync {}, fixed {}, unknown customer {}, superseded {}",
            self.checked, self.in_sync, self.fixed, self.unknown_customer, self.superseded
        )
    }
}

fn retryable(e: impl Into<anyhow::Error>) -> JobError {
    JobError::Retryable(e.into())
}

fn billing_error(e: BillingError) -> JobError {
    retryable(e)
}

#[async_trait]
impl Worker for BillingReconcileJob {
    type Args = BillingReconcileArgs;

    fn starter(&self) -> Starter {
        Starter::Platform
    }

    async fn work(&self, ctx: &mut JobContext, _: BillingReconcileArgs) -> Result<(), JobError> {
        let billing = &self.0;
        let mut counts = Counts::default();
        let cause = Cause {
            actor: Actor::system(),
            request_id: None,
            via: "billing_reconcile",
        };
        if billing.stripe.configured() {
            let mut after: Option<String> = None;
            loop {
                ctx.checkpoint().await?;
                let read_at = Utc::now();
                let page = billing
                    .stripe
                    .subscriptions(after.as_deref(), PAGE)
                    .await
                    .map_err(retryable)?;
                for sub in &page.data {
                    counts.checked += 1;
                    let Some(tenant) = tenant_of(ctx.pool(), sub).await.map_err(retryable)? else {
                        counts.unknown_customer += 1;
                        continue;
                    };
                    let mut tx = ctx.pool().begin().await?;
                    let applied = sync::apply_subscription(
                        &mut tx,
                        &billing.prices,
                        billing.grace,
                        tenant,
                        sub,
                        read_at,
                        cause,
                    )
                    .await
                    .map_err(billing_error)?;
                    tx.commit().await?;
                    match applied {
                        Applied::InSync => counts.in_sync += 1,
                        Applied::Changed => {
                            counts.fixed += 1;
                            tracing::info!(tenant_id = %tenant, subscription = %sub.id, "billing drift fixed");
                        }
                        Applied::Stale => counts.superseded += 1,
                    }
                }
                ctx.progress(counts.checked, None, Some(&counts.message()))
                    .await?;
                match (page.has_more, page.data.last()) {
                    (true, Some(last)) => after = Some(last.id.clone()),
                    _ => break,
                }
            }
        }
        for tenant in billing::due(ctx.pool(), Utc::now())
            .await
            .map_err(retryable)?
        {
            let mut tx = ctx.pool().begin().await?;
            if sync::settle(&mut tx, tenant, cause)
                .await
                .map_err(billing_error)?
            {
                counts.deadlines += 1;
                counts.fixed += 1;
            }
            tx.commit().await?;
        }
        let mut tx = ctx.pool().begin().await?;
        ctx.progress(
            counts.checked,
            Some(counts.checked),
            Some(&counts.message()),
        )
        .await?;
        audit::record(
            &mut *tx,
            NewEvent {
                tenant_id: None,
                actor: Actor::system(),
                action: "billing.reconciled",
                target_type: Some("job"),
                target_id: Some(ctx.job_id.to_string()),
                details: json!(counts),
                request_id: None,
            },
        )
        .await
        .map_err(retryable)?;
        ctx.complete_in(&mut tx).await?;
        tx.commit().await?;
        tracing::info!(?counts, "billing reconciled");
        Ok(())
    }
}

/// The tenant a subscription belongs to: its `tenant_id` metadata (set at
/// checkout) when that tenant exists, else its customer's tenant.
async fn tenant_of(db: &sqlx::PgPool, sub: &Subscription) -> Result<Option<TenantId>, StoreError> {
    if let Some(id) = sub
        .metadata
        .get("tenant_id")
        .and_then(|t| t.parse::<uuid::Uuid>().ok())
    {
        match tenants::get(db, TenantId(id)).await {
            Ok(t) => return Ok(Some(t.id)),
            Err(StoreError::NotFound) => {}
            Err(e) => return Err(e),
        }
    }
    billing::tenant_of_customer(db, &sub.customer).await
}

/// Hourly, on the hour.
pub fn schedule() -> Schedule {
    Schedule::new(
        BillingReconcileArgs::KIND,
        "0 0 * * * *",
        Arc::new(|tick, _pool| {
            Box::pin(async move { Ok(vec![BillingReconcileArgs { at: tick }.job()]) })
        }),
    )
    .expect("static cron expression")
}
