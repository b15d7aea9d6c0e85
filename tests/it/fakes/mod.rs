//! Outside services as real HTTP servers the tests start (in-process axum),
//! behaving as their documents say.

pub mod highlevel;
