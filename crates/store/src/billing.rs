//! Each tenant's billing row (its link to Stripe, where its package comes
//! from) and the Stripe events already taken. The rules that decide a
//! package live in `bizcontacts-billing`; this module only reads and
//! writes.

use crate::error::parse_stored;
use crate::Result;
use bizcontacts_domain::{PackageName, TenantId};
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};

/// A tenant's billing state, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingRow {
    pub tenant_id: TenantId,
    /// `default`, `checkout` or `manual`.
    pub source: String,
    pub stripe_customer_id: Option<String>,
    pub stripe_subscription_id: Option<String>,
    pub subscription_status: Option<String>,
    pub subscription_package: Option<PackageName>,
    pub current_period_end: Option<DateTime<Utc>>,
    pub grace_until: Option<DateTime<Utc>>,
    pub synced_at: Option<DateTime<Utc>>,
    pub manual_package: Option<PackageName>,
    pub manual_until: Option<DateTime<Utc>>,
    pub manual_reason: Option<String>,
}

#[derive(sqlx::FromRow)]
struct Row {
    tenant_id: uuid::Uuid,
    source: String,
    stripe_customer_id: Option<String>,
    stripe_subscription_id: Option<String>,
    subscription_status: Option<String>,
    subscription_package: Option<String>,
    current_period_end: Option<DateTime<Utc>>,
    grace_until: Option<DateTime<Utc>>,
    synced_at: Option<DateTime<Utc>>,
    manual_package: Option<String>,
    manual_until: Option<DateTime<Utc>>,
    manual_reason: Option<String>,
}

impl TryFrom<Row> for BillingRow {
    type Error = crate::StoreError;
    fn try_from(r: Row) -> Result<Self> {
        let package =
            |column: &str, v: Option<String>| v.map(|p| parse_stored(column, &p)).transpose();
        Ok(BillingRow {
            tenant_id: TenantId(r.tenant_id),
            source: r.source,
            stripe_customer_id: r.stripe_customer_id,
            stripe_subscription_id: r.stripe_subscription_id,
            subscription_status: r.subscription_status,
            subscription_package: package(
                "tenant_billing.subscription_package",
                r.subscription_package,
            )?,
            current_period_end: r.current_period_end,
            grace_until: r.grace_until,
            synced_at: r.synced_at,
            manual_package: package("tenant_billing.manual_package", r.manual_package)?,
            manual_until: r.manual_until,
            manual_reason: r.manual_reason,
        })
    }
}

const COLUMNS: &str = "tenant_id, source, stripe_customer_id, stripe_subscription_id,
    subscription_status, subscription_package, current_period_end, grace_until, synced_at,
    manual_package, manual_until, manual_reason";

/// The tenant's row; a tenant that never touched billing has none.
pub async fn get(db: impl PgExecutor<'_>, tenant: TenantId) -> Result<Option<BillingRow>> {
    sqlx::query_as::<_, Row>(&format!(
        "SELECT {COLUMNS} FROM tenant_billing WHERE tenant_id = $1"
    ))
    .bind(tenant.0)
    .fetch_optional(db)
    .await?
    .map(TryInto::try_into)
    .transpose()
}

/// The tenant's row, made when missing, locked until the transaction ends:
/// every change of a tenant's billing goes through this lock, so webhooks,
/// reconciliation and admins never interleave on one tenant.
pub async fn lock(tx: &mut PgConnection, tenant: TenantId) -> Result<BillingRow> {
    sqlx::query("INSERT INTO tenant_billing (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(tenant.0)
        .execute(&mut *tx)
        .await?;
    sqlx::query_as::<_, Row>(&format!(
        "SELECT {COLUMNS} FROM tenant_billing WHERE tenant_id = $1 FOR UPDATE"
    ))
    .bind(tenant.0)
    .fetch_one(&mut *tx)
    .await?
    .try_into()
}

/// Write every field of `row` back.
pub async fn save(tx: &mut PgConnection, row: &BillingRow) -> Result<()> {
    sqlx::query(
        "UPDATE tenant_billing SET source = $2, stripe_customer_id = $3,
            stripe_subscription_id = $4, subscription_status = $5, subscription_package = $6,
            current_period_end = $7, grace_until = $8, synced_at = $9, manual_package = $10,
            manual_until = $11, manual_reason = $12, updated_at = now()
         WHERE tenant_id = $1",
    )
    .bind(row.tenant_id.0)
    .bind(&row.source)
    .bind(&row.stripe_customer_id)
    .bind(&row.stripe_subscription_id)
    .bind(&row.subscription_status)
    .bind(row.subscription_package.map(|p| p.as_str()))
    .bind(row.current_period_end)
    .bind(row.grace_until)
    .bind(row.synced_at)
    .bind(row.manual_package.map(|p| p.as_str()))
    .bind(row.manual_until)
    .bind(&row.manual_reason)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The tenant a Stripe customer belongs to.
pub async fn tenant_of_customer(
    db: impl PgExecutor<'_>,
    customer: &str,
) -> Result<Option<TenantId>> {
    Ok(sqlx::query_scalar::<_, uuid::Uuid>(
        "SELECT tenant_id FROM tenant_billing WHERE stripe_customer_id = $1",
    )
    .bind(customer)
    .fetch_optional(db)
    .await?
    .map(TenantId))
}

/// Tenants with a deadline (a grace period or a manual activation that
/// ends) at or before `now`: billing_reconcile decides their package again.
pub async fn due(db: impl PgExecutor<'_>, now: DateTime<Utc>) -> Result<Vec<TenantId>> {
    Ok(sqlx::query_scalar::<_, uuid::Uuid>(
        "SELECT tenant_id FROM tenant_billing
         WHERE (grace_until IS NOT NULL OR manual_until IS NOT NULL)
           AND (grace_until <= $1 OR manual_until <= $1)
         ORDER BY tenant_id",
    )
    .bind(now)
    .fetch_all(db)
    .await?
    .into_iter()
    .map(TenantId)
    .collect())
}

/// Take a Stripe event once: false when it was taken before (the caller
/// then rolls back). Two copies arriving together: the second waits on the
/// first's key and then sees it.
pub async fn record_event(
    tx: &mut PgConnection,
    id: &str,
    kind: &str,
    created: DateTime<Utc>,
    tenant: Option<TenantId>,
    outcome: &str,
) -> Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO stripe_events (id, type, created, tenant_id, outcome)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(kind)
    .bind(created)
    .bind(tenant.map(|t| t.0))
    .bind(outcome)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// Whether a Stripe event was taken before (a cheap check ahead of the
/// work; [`record_event`] is what decides).
pub async fn event_seen(db: impl PgExecutor<'_>, id: &str) -> Result<bool> {
    Ok(
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM stripe_events WHERE id = $1)")
            .bind(id)
            .fetch_one(db)
            .await?,
    )
}

/// Make `customer` the tenant's Stripe customer (checkout completed), unless
/// it has one or another tenant holds this one (then nothing changes: a
/// customer never moves between tenants by a webhook).
pub async fn link_customer(tx: &mut PgConnection, tenant: TenantId, customer: &str) -> Result<()> {
    lock(tx, tenant).await?;
    sqlx::query(
        "UPDATE tenant_billing SET stripe_customer_id = $2, updated_at = now()
         WHERE tenant_id = $1 AND stripe_customer_id IS NULL
           AND NOT EXISTS (SELECT 1 FROM tenant_billing WHERE stripe_customer_id = $2)",
    )
    .bind(tenant.0)
    .bind(customer)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
