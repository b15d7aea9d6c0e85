//! `bench_noop`: a job that does nothing, to measure the platform itself.
//! It exists only in this binary's registry, never in the product's.

use async_trait::async_trait;
use bizcontacts_config::Settings;
use bizcontacts_queue::args::{JobArgs, Worker};
use bizcontacts_queue::handler::{JobContext, JobError, Registry, RetryPolicy, Starter};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Serialize, Deserialize)]
pub struct NoopArgs {}

impl JobArgs for NoopArgs {
    const KIND: &'static str = "bench_noop";
    fn retry() -> RetryPolicy {
        RetryPolicy::new(3, Duration::from_millis(100), Duration::from_secs(1))
    }
}

/// Idempotent trivially: it has no effect.
struct Noop;

#[async_trait]
impl Worker for Noop {
    type Args = NoopArgs;
    fn starter(&self) -> Starter {
        Starter::Platform
    }
    async fn work(&self, _: &mut JobContext, _: NoopArgs) -> Result<(), JobError> {
        Ok(())
    }
}

/// The product's kinds (the CRM ones too, for `crm-push`) plus `bench_noop`.
pub async fn registry(settings: &Settings) -> anyhow::Result<Registry> {
    let redis = bizcontacts::runtime::redis(settings).await?;
    Ok(bizcontacts::runtime::registry(settings, &redis)?.with(Noop))
}
