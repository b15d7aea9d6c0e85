//! Which package a tenant's billing state gives it: one pure function, so
//! webhooks, reconciliation and admins can never disagree.
//!
//! In order:
//! 1. A manual activation that has not ended wins (terms: "approved manual
//!    administration"), whatever Stripe says.
//! 2. A linked subscription: `active` or `trialing` gives the package its
//!    price buys; `past_due` keeps it until the grace period ends, then
//!    free; anything else (canceled, unpaid, incomplete, ...) is free. A
//!    price we do not sell decides nothing (a misconfiguration must not
//!    downgrade a paying tenant; reconciliation reports it).
//! 3. A manual activation that ended, with no subscription: free.
//! 4. Otherwise billing has no say (a tenant an operator created with a
//!    package, never linked to Stripe, keeps it).

use bizcontacts_domain::PackageName;
use bizcontacts_store::billing::BillingRow;
use chrono::{DateTime, Utc};

/// Where a tenant's package comes from (`GET /billing`'s `source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Default,
    Checkout,
    Manual,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Default => "default",
            Source::Checkout => "checkout",
            Source::Manual => "manual",
        }
    }
}

/// The package `row` gives at `now`, or None when billing has no say.
pub fn decide(row: &BillingRow, now: DateTime<Utc>) -> Option<(PackageName, Source)> {
    if let Some(package) = row.manual_package {
        if row.manual_until.is_none_or(|until| until > now) {
            return Some((package, Source::Manual));
        }
    }
    let free = Some((PackageName::Free, Source::Default));
    match (
        &row.stripe_subscription_id,
        row.subscription_status.as_deref(),
    ) {
        (Some(_), Some("active" | "trialing")) => {
            row.subscription_package.map(|p| (p, Source::Checkout))
        }
        (Some(_), Some("past_due")) => {
            if row.grace_until.is_some_and(|g| g > now) {
                row.subscription_package.map(|p| (p, Source::Checkout))
            } else {
                free
            }
        }
        (Some(_), _) => free,
        (None, _) if row.manual_package.is_some() => free,
        (None, _) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bizcontacts_domain::TenantId;
    use chrono::Duration;

    fn row() -> BillingRow {
        BillingRow {
            tenant_id: TenantId(uuid::Uuid::nil()),
            source: "default".into(),
            stripe_customer_id: None,
            stripe_subscription_id: None,
            subscription_status: None,
            subscription_package: None,
            current_period_end: None,
            grace_until: None,
            synced_at: None,
            manual_package: None,
            manual_until: None,
            manual_reason: None,
        }
    }

    fn subscribed(status: &str) -> BillingRow {
        BillingRow {
            stripe_subscription_id: Some("sub_1".into()),
            subscription_status: Some(status.into()),
            subscription_package: Some(PackageName::Pro),
            ..row()
        }
    }

    #[test]
    fn a_subscription_gives_its_package_while_it_is_paid() {
        let now = Utc::now();
        assert_eq!(decide(&row(), now), None);
        for paid in ["active", "trialing"] {
            assert_eq!(
                decide(&subscribed(paid), now),
                Some((PackageName::Pro, Source::Checkout))
            );
        }
        for unpaid in [
            "canceled",
            "unpaid",
            "incomplete",
            "incomplete_expired",
            "paused",
            "?",
        ] {
            assert_eq!(
                decide(&subscribed(unpaid), now),
                Some((PackageName::Free, Source::Default)),
                "{unpaid}"
            );
        }
        let unknown_price = BillingRow {
            subscription_package: None,
            ..subscribed("active")
        };
        assert_eq!(decide(&unknown_price, now), None);
    }

    #[test]
    fn past_due_keeps_the_package_until_grace_ends() {
        let now = Utc::now();
        let mut r = subscribed("past_due");
        r.grace_until = Some(now + Duration::days(1));
        assert_eq!(decide(&r, now), Some((PackageName::Pro, Source::Checkout)));
        r.grace_until = Some(now);
        assert_eq!(decide(&r, now), Some((PackageName::Free, Source::Default)));
    }

    #[test]
    fn a_manual_activation_wins_until_it_ends() {
        let now = Utc::now();
        let mut r = subscribed("canceled");
        r.manual_package = Some(PackageName::Enterprise);
        assert_eq!(
            decide(&r, now),
            Some((PackageName::Enterprise, Source::Manual))
        );
        r.manual_until = Some(now + Duration::hours(1));
        assert_eq!(
            decide(&r, now),
            Some((PackageName::Enterprise, Source::Manual))
        );
        r.manual_until = Some(now);
        assert_eq!(decide(&r, now), Some((PackageName::Free, Source::Default)));
        // Ended, and nothing paid for: free, not the manual package kept.
        let ended = BillingRow {
            manual_package: Some(PackageName::Pro),
            manual_until: Some(now - Duration::hours(1)),
            ..row()
        };
        assert_eq!(
            decide(&ended, now),
            Some((PackageName::Free, Source::Default))
        );
        // Ended, with a paid subscription: the subscription's package.
        let mut paid = subscribed("active");
        paid.manual_package = Some(PackageName::Enterprise);
        paid.manual_until = Some(now - Duration::hours(1));
        assert_eq!(
            decide(&paid, now),
            Some((PackageName::Pro, Source::Checkout))
        );
    }
}
