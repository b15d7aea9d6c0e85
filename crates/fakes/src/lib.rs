//! Outside services as real HTTP servers, started in-process by the tests
//! (`tests/it`) and the benchmarks (`bizcontacts-bench`), behaving as their
//! documents say: paging limits, 401 on expired tokens, refresh tokens that
//! work once, 429 with rate-limit headers.
//!
//! - [`highlevel`]: HighLevel API v2 (OAuth token, Locations, contacts).
//! - [`stripe`]: Stripe (Checkout Sessions, subscriptions, signed events).

pub mod highlevel;
pub mod stripe;
