//! Every Postgres advisory lock the platform takes, named in one list so no
//! two uses can share a key by accident.
//!
//! Locks use the two-key form `pg_advisory_xact_lock(class, key)` ([`SQL`]):
//! `class` is one of the uses below and `key` the object within it (a
//! tenant's `hashtext`, or `''` for a lock of the whole use). The two-key
//! space is separate from the one-key (`bigint`) space, so nothing else that
//! shares the database collides with these. Two tenants whose ids hash alike
//! share a lock now and then: that only serialises them, it is never wrong.

/// What an advisory lock protects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum AdvisoryLock {
    /// A tenant's admission: enqueues and promotions of deferred jobs count
    /// the tenant's queued and running jobs under it.
    TenantAdmission = 1,
    /// A tenant's claims: workers count its running jobs under it.
    TenantClaim = 2,
    /// The corpus writers (dedupe chunks, quarantine, sweeps).
    Corpus = 3,
    /// Seeding the demo tenant when several `dev` processes start at once.
    DemoSeed = 4,
    /// A tenant's webhook-started pull: concurrent deliveries of a burst
    /// see each other's pending pull and add none.
    TenantPullDebounce = 5,
    /// Counting the corpus's term frequencies: one dedupe job counts, the
    /// others wait and read its counts.
    TermFrequencies = 6,
}

impl AdvisoryLock {
    pub const fn class(self) -> i32 {
        self as i32
    }
}

/// Take a lock until the transaction ends: bind [`AdvisoryLock::class`] and
/// the object's key as text.
pub const SQL: &str = "SELECT pg_advisory_xact_lock($1, hashtext($2))";
