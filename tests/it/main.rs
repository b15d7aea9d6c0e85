//! Integration tests: one binary (fast to link), one module per area.
//!
//! Every test gets its own database, cloned from a template migrated once per
//! run, and its own Redis key prefix, so tests run in parallel and leave
//! nothing behind. See `harness.rs`.

mod harness;

mod abuse;
mod admin_browser;
mod admin_web;
mod bad_input;
mod billing;
mod cli;
mod crm;
mod crm_pull;
mod crm_push;
mod dedupe;
mod dedupe_ahead;
mod dedupe_recall;
mod erasure;
mod exports;
mod http_basics;
mod identity;
mod imports;
mod invitations;
mod jobs;
mod jobs_processes;
mod permission_matrix;
mod retention;
mod search;
mod secrets;
mod suspension;
mod tenant_delete;
mod workers;
