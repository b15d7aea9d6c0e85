//! Postgres store: the source of truth.
//!
//! [`Store`] owns the pool; each module holds the SQL for one table family and
//! takes any executor, so a caller can run several of them in one transaction
//! (a domain write and the audit event that records it commit together).
//!
//! Migrations live in the workspace's `migrations/` and are embedded here.

pub mod api_keys;
pub mod audit;
pub mod billing;
pub mod corpus;
pub mod corrections;
pub mod crm;
pub mod crm_pushes;
pub mod db;
pub mod erasure;
pub mod error;
pub mod exports;
pub mod idempotency;
pub mod imports;
pub mod invitations;
pub mod matches;
pub mod packages;
pub mod retention;
pub mod search;
pub mod search_pool;
pub mod sessions;
pub mod staged_rows;
pub mod sweeps;
pub mod tenant_deletion;
pub mod tenants;
pub mod term_frequencies;
pub mod usage;
pub mod users;

pub use db::Store;
pub use error::StoreError;

/// Convenience alias for store results.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
