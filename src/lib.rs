//! `bizcontacts`: the one binary of the platform.
//!
//! `serve` runs the HTTP intake, `worker` the job workers, `scheduler` the
//! periodic jobs, `dev` all three in one process on local defaults (creating the
//! database and a demo tenant on first start). Admin commands print only the id
//! or key they create, so scripts can capture them. See `cli.rs` for the full
//! list and `shared/spec/api.md` (operations contract) for what is stable.

pub mod cli;
pub mod commands;
pub mod runtime;
