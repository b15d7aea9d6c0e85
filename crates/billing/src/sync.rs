//! How billing state reaches a tenant: a subscription as Stripe showed it,
//! a manual activation, or a deadline passing. Every path locks the
//! tenant's billing row, updates it, lets [`policy::decide`] pick the
//! package, and writes the package with an audit event when it changes,
//! all in the caller's transaction (a webhook's, with its event record; a
//! reconciliation's; an admin's request).

use crate::policy::{self, Source};
use crate::types::Subscription;
use crate::BillingError;
use bizcontacts_domain::{PackageName, TenantId};
use bizcontacts_store::audit::{self, Actor, NewEvent};
use bizcontacts_store::billing::{self, BillingRow};
use bizcontacts_store::tenants;
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;
use sqlx::PgConnection;

/// The price id of each paid package (from `stripe.prices`).
#[derive(Debug, Clone, Default)]
pub struct Prices {
    pub starter: String,
    pub pro: String,
    pub enterprise: String,
}

impl Prices {
    /// The price a package is sold at; None for free and unsold packages.
    pub fn of(&self, package: PackageName) -> Option<&str> {
        let price = match package {
            PackageName::Free => return None,
            PackageName::Starter => &self.starter,
            PackageName::Pro => &self.pro,
            PackageName::Enterprise => &self.enterprise,
        };
        (!price.is_empty()).then_some(price.as_str())
    }

    /// The package a price buys.
    pub fn package(&self, price: &str) -> Option<PackageName> {
        PackageName::ALL
            .into_iter()
            .find(|p| self.of(*p) == Some(price))
    }
}

/// Who or what caused a change, for its audit event.
#[derive(Debug, Clone, Copy)]
pub struct Cause<'a> {
    pub actor: Actor,
    pub request_id: Option<&'a str>,
    /// What brought it: `webhook:<event type>`, `billing_reconcile`, `admin`.
    pub via: &'a str,
}

/// What applying did to the tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Nothing differed: the tenant was in sync.
    InSync,
    /// The stored state or the package changed (drift fixed, event taken).
    Changed,
    /// A read older than what is stored, or a subscription the tenant has
    /// since replaced: ignored.
    Stale,
}

fn at(unix: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_opt(unix, 0).single()
}

/// Whether a subscription in `status` is one a tenant is paying for (or
/// about to): such a subscription replaces another the tenant had.
fn live(status: Option<&str>) -> bool {
    matches!(status, Some("active" | "trialing" | "past_due"))
}

/// Apply `sub` as Stripe returned it from a read that started at `read_at`.
pub async fn apply_subscription(
    tx: &mut PgConnection,
    prices: &Prices,
    grace: Duration,
    tenant: TenantId,
    sub: &Subscription,
    read_at: DateTime<Utc>,
    cause: Cause<'_>,
) -> Result<Applied, BillingError> {
    let now = Utc::now();
    let mut row = billing::lock(tx, tenant).await?;
    let same = row.stripe_subscription_id.as_deref() == Some(sub.id.as_str());
    if same && row.synced_at.is_some_and(|s| s > read_at) {
        return Ok(Applied::Stale);
    }
    let status = sub.status.as_str();
    if !same
        && row.stripe_subscription_id.is_some()
        && live(row.subscription_status.as_deref())
        && !live(Some(status))
    {
        // An old, ended subscription never replaces a live one.
        return Ok(Applied::Stale);
    }
    let before = row.clone();
    if row.stripe_customer_id.is_none() {
        // A customer never moves from another tenant to this one.
        let holder = billing::tenant_of_customer(&mut *tx, &sub.customer).await?;
        if holder.is_none_or(|h| h == tenant) {
            row.stripe_customer_id = Some(sub.customer.clone());
        }
    }
    row.stripe_subscription_id = Some(sub.id.clone());
    row.subscription_status = Some(status.to_string());
    row.subscription_package = sub.price().and_then(|p| prices.package(p));
    row.current_period_end = sub.period_end().and_then(at);
    row.grace_until = match status {
        // The grace period starts with the first failure and is not
        // extended by later ones.
        "past_due" => Some(before.grace_until.unwrap_or(now + grace)),
        _ => None,
    };
    row.synced_at = Some(read_at);
    if row.grace_until.is_some() && before.grace_until.is_none() {
        record(
            tx,
            tenant,
            cause,
            "billing.past_due",
            json!({ "subscription": sub.id, "grace_until": row.grace_until, "via": cause.via }),
        )
        .await?;
    }
    let changed = settle_row(tx, row.clone(), now, cause).await?;
    let stored_changed = BillingRow {
        synced_at: before.synced_at,
        ..row
    } != before;
    Ok(if changed || stored_changed {
        Applied::Changed
    } else {
        Applied::InSync
    })
}

/// Decide the tenant's package again from what is stored (a deadline
/// passed, an admin changed the manual activation). True when it changed.
pub async fn settle(
    tx: &mut PgConnection,
    tenant: TenantId,
    cause: Cause<'_>,
) -> Result<bool, BillingError> {
    let row = billing::lock(tx, tenant).await?;
    settle_row(tx, row, Utc::now(), cause).await
}

/// Save `row`, then set the package [`policy::decide`] gives, auditing a change.
async fn settle_row(
    tx: &mut PgConnection,
    mut row: BillingRow,
    now: DateTime<Utc>,
    cause: Cause<'_>,
) -> Result<bool, BillingError> {
    let tenant = tenants::lock(tx, row.tenant_id).await?;
    let Some((package, source)) = policy::decide(&row, now) else {
        billing::save(tx, &row).await?;
        return Ok(false);
    };
    let changed = tenant.package != package || row.source != source.as_str();
    row.source = source.as_str().to_string();
    billing::save(tx, &row).await?;
    if tenant.package != package {
        tenants::set_package(&mut *tx, row.tenant_id, package).await?;
        let grace_ended =
            row.subscription_status.as_deref() == Some("past_due") && source == Source::Default;
        record(
            tx,
            row.tenant_id,
            cause,
            if grace_ended {
                "billing.grace_ended"
            } else {
                "billing.package_changed"
            },
            json!({
                "from": tenant.package,
                "to": package,
                "source": source.as_str(),
                "subscription_status": row.subscription_status,
                "via": cause.via,
            }),
        )
        .await?;
    }
    Ok(changed)
}

/// A platform admin's activation of `package` until `until` (None: until
/// revoked). Webhooks and reconciliation leave it alone while it lasts.
pub async fn activate_manually(
    tx: &mut PgConnection,
    tenant: TenantId,
    package: PackageName,
    until: Option<DateTime<Utc>>,
    reason: &str,
    cause: Cause<'_>,
) -> Result<(), BillingError> {
    let mut row = billing::lock(tx, tenant).await?;
    row.manual_package = Some(package);
    row.manual_until = until;
    row.manual_reason = Some(reason.to_string());
    record(
        tx,
        tenant,
        cause,
        "billing.manual_activation",
        json!({ "package": package, "until": until, "reason": reason }),
    )
    .await?;
    settle_row(tx, row, Utc::now(), cause).await?;
    Ok(())
}

/// End a manual activation now: the subscription's package, or free.
/// False when there was none to end.
pub async fn revoke_manual(
    tx: &mut PgConnection,
    tenant: TenantId,
    reason: &str,
    cause: Cause<'_>,
) -> Result<bool, BillingError> {
    let now = Utc::now();
    let mut row = billing::lock(tx, tenant).await?;
    if row.manual_package.is_none() || row.manual_until.is_some_and(|u| u <= now) {
        return Ok(false);
    }
    row.manual_until = Some(now);
    record(
        tx,
        tenant,
        cause,
        "billing.manual_revoked",
        json!({ "package": row.manual_package, "reason": reason }),
    )
    .await?;
    settle_row(tx, row, now, cause).await?;
    Ok(true)
}

async fn record(
    tx: &mut PgConnection,
    tenant: TenantId,
    cause: Cause<'_>,
    action: &str,
    details: serde_json::Value,
) -> Result<(), BillingError> {
    audit::record(
        &mut *tx,
        NewEvent {
            tenant_id: Some(tenant),
            actor: cause.actor,
            action,
            target_type: Some("tenant"),
            target_id: Some(tenant.to_string()),
            details,
            request_id: cause.request_id,
        },
    )
    .await?;
    Ok(())
}
