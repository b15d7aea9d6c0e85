//! The job platform: a Postgres ledger that owns every job's fate, and Redis
//! (through apalis-redis) as the transport that carries job ids to workers.
//!
//! Where to start:
//! - [`ledger`]: enqueue inside the caller's transaction, read, cancel, retry.
//! - `admission`: the per-tenant concurrent-job limit, counted from the
//!   ledger when a job is admitted and again when it is claimed.
//! - [`claim`]: how a worker turns a delivery into a run (leases, batching)
//!   and records how it ended.
//! - [`worker`]: the worker process: apalis workers per kind, heartbeats,
//!   graceful shutdown.
//! - [`relay`]: periodic repairs (lost pushes, expired leases, Redis data loss).
//! - [`scheduler`]: cron ticks enqueued exactly once across replicas.
//! - [`handler`]: what a job kind implements.
//! - [`presence`], [`monitor`]: live workers, and what the admin dashboard
//!   reads (throughput buckets, latency, deferred jobs, a job's runs).
//!
//! Why the ledger and not apalis owns retries: apalis-redis 1.0 retries any
//! failed task 25 times a second apart, whatever the policy says, and keeps
//! finished tasks forever. Here handlers' outcomes are always acknowledged to
//! apalis, and the ledger applies each kind's backoff, attempts and dead state.

mod admission;
pub mod args;
pub mod claim;
pub mod handler;
pub mod job;
pub mod ledger;
mod metrics;
pub mod monitor;
pub mod presence;
mod redis_conn;
pub mod relay;
pub mod scheduler;
mod sql;
pub mod transport;
pub mod worker;

pub use redis_conn::Redis;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("push to Redis failed: {0}")]
    Push(String),
    #[error("no queue for job kind {0:?}")]
    UnknownKind(String),
}
