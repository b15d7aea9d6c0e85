//! Job handlers of Business Contacts: one file per kind, registered in
//! [`registry`], scheduled in [`schedules`].
//!
//! Each kind has one arguments type (`ImportArgs`, `DedupeArgs`, ...,
//! implementing `bizcontacts_queue::args::JobArgs`) that the intake, the
//! scheduler and the kind's `Worker` share: `ImportArgs { import_id }.job()`
//! is the job the handler will decode. To add a kind, see the README.
//!
//! Every handler is idempotent and says in its doc comment what makes it so.
//! `dedupe_plan` (where a dedupe chunk's rows go) and `parallel` (its
//! CPU-bound maps over the cores) serve the `dedupe` kind.
//! A kind whose outside service is not configured is still registered and
//! says so when it runs (billing_reconcile without Stripe reconciles only
//! deadlines).

mod billing_reconcile;
mod crm_pull;
mod crm_push;
mod dedupe;
mod dedupe_chunk;
mod dedupe_plan;
mod dedupe_sweep;
mod export;
mod import;
mod import_read;
mod parallel;
mod quota_reset;
mod retention;
mod tenant_delete;
#[cfg(feature = "test-kinds")]
mod test_kinds;

use bizcontacts_billing::Billing;
use bizcontacts_config::{DedupeSettings, RetentionSettings};
use bizcontacts_matching::{Matcher, Thresholds};
use bizcontacts_queue::handler::Registry;
use bizcontacts_queue::scheduler::Schedule;
use bizcontacts_store::term_frequencies;
use std::time::Duration;

pub use billing_reconcile::{BillingReconcileArgs, BillingReconcileJob};
pub use crm_pull::{CrmPullArgs, CrmPullJob, DEBOUNCE};
pub use crm_push::{CrmPushArgs, CrmPushJob, CrmWork, MAX_PUSH};
pub use dedupe::{DedupeArgs, DedupeJob};
pub use export::{ExportArgs, ExportJob};
pub use import::{ImportArgs, ImportJob};
pub use quota_reset::{QuotaReset, QuotaResetArgs};
pub use retention::{RetentionArgs, RetentionJob};
pub use tenant_delete::{TenantDeleteArgs, TenantDeleteJob};
#[cfg(feature = "test-kinds")]
pub use test_kinds::{FailArgs, NoopArgs, SleepArgs};

/// Every kind this build can run. The CRM kinds need HighLevel and the
/// secrets keys (`crm`); without them they are left out.
pub fn registry(
    dedupe: &DedupeSettings,
    crm: Option<CrmWork>,
    billing: Billing,
    retention: RetentionSettings,
) -> Registry {
    let model = dedupe.model.clone().unwrap_or_default();
    let dedupe = DedupeJob {
        matcher: Matcher::new(
            &model,
            Thresholds::from_probabilities(dedupe.merge_probability, dedupe.possible_probability),
        ),
        max_block_size: dedupe.max_block_size,
        chunk: dedupe.chunk_rows.max(1),
        recent_keys_max: dedupe.recent_keys_max,
        read_ahead: dedupe.read_ahead,
        term_frequencies: term_frequencies::Policy {
            min_count: dedupe.term_frequency_min_count,
            max_age: Duration::from_secs(dedupe.term_frequency_max_age_secs),
        },
    };
    let registry = Registry::default()
        .with(QuotaReset)
        .with(BillingReconcileJob(billing))
        .with(RetentionJob(retention))
        .with(ExportJob)
        .with(TenantDeleteJob)
        .with(ImportJob)
        .with(dedupe);
    let registry = match crm {
        Some(crm) => registry.with(CrmPullJob(crm.clone())).with(CrmPushJob(crm)),
        None => registry,
    };
    #[cfg(feature = "test-kinds")]
    let registry = test_kinds::register(registry);
    registry
}

/// The periodic jobs, in UTC.
pub fn schedules() -> Vec<Schedule> {
    #[allow(unused_mut)]
    let mut all = vec![
        quota_reset::schedule(),
        crm_pull::schedule(),
        billing_reconcile::schedule(),
        retention::schedule(),
    ];
    #[cfg(feature = "test-kinds")]
    all.extend(test_kinds::schedule());
    all
}

/// Every kind of the product; each has its handler in [`registry`]
/// (`tests/it/jobs.rs` checks).
pub const PRODUCT_KINDS: [&str; 9] = [
    "import",
    "dedupe",
    "crm_pull",
    "crm_push",
    "quota_reset",
    "billing_reconcile",
    "retention",
    "export",
    "tenant_delete",
];
