//! Bounds that keep one client or tenant from taking the intake down:
//! sign-in back-off and concurrent-request slots.
//!
//! Both live in Redis, not in the process, so they hold across every intake
//! replica; Redis's clock (`TIME` inside the scripts) is the only clock, so
//! replicas with skewed clocks agree. The state is short-lived and safe to
//! lose: a Redis restart forgets failures and frees slots, nothing more.
//!
//! Sign-in: each wrong password counts against the account (its email,
//! hashed) and the client address. Past `free` failures a key is locked for
//! `base * 2^(failures - free)`, capped; attempts while locked are refused
//! before any password is hashed, so a guesser costs us a Redis round trip
//! and no argon2. A success clears the account's count (not the address's:
//! signing in to one's own account must not reset a spray across others).
//!
//! `governor` was considered: its GCRA limiter is in-process (each replica
//! would allow its own quota) and has no notion of back-off that doubles.

use crate::error::ApiError;
use bizcontacts_queue::Redis;
use redis::Script;
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Settings of sign-in throttling (`auth.login_*` in the configuration).
#[derive(Debug, Clone)]
pub struct SignInSettings {
    pub free_failures: u32,
    pub address_free_failures: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub window: Duration,
    pub max_concurrent_hashes: usize,
}

/// Throttles sign-in and bounds the password hashing it does.
#[derive(Clone)]
pub struct SignInGuard {
    redis: Redis,
    settings: SignInSettings,
    /// argon2id takes 19 MiB and tens of ms of a core per hash; without a
    /// bound, a burst of sign-ins fills the blocking pool and memory.
    hashing: Arc<Semaphore>,
}

/// Remaining lock of a key in ms (0: not locked).
static CHECK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local t = redis.call('TIME')
        local now = t[1] * 1000 + math.floor(t[2] / 1000)
        local untils = 0
        for i, key in ipairs(KEYS) do
            local u = tonumber(redis.call('HGET', key, 'until') or '0')
            if u - now > untils then untils = u - now end
        end
        return untils
        ",
    )
});

/// Count a failure; returns {failures, lock_ms}. ARGV: free, base_ms, max_ms, window_ms.
static FAIL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local t = redis.call('TIME')
        local now = t[1] * 1000 + math.floor(t[2] / 1000)
        local free, base, max, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
        local n = redis.call('HINCRBY', KEYS[1], 'failures', 1)
        local lock = 0
        if n >= free then
            lock = math.min(base * 2 ^ math.min(n - free, 40), max)
            redis.call('HSET', KEYS[1], 'until', now + lock)
        end
        redis.call('PEXPIRE', KEYS[1], math.max(window, lock))
        return {n, lock}
        ",
    )
});

/// What a counted failure did to the account.
pub struct Failure {
    /// The account's failures in the window, this one included.
    pub failures: u32,
    /// The account has just been locked for the first time in this window.
    pub locked_now: bool,
}

impl SignInGuard {
    pub fn new(redis: Redis, settings: SignInSettings) -> Self {
        let hashing = Arc::new(Semaphore::new(settings.max_concurrent_hashes.max(1)));
        Self {
            redis,
            settings,
            hashing,
        }
    }

    fn keys(&self, email: &str, address: Option<IpAddr>) -> (String, Option<String>) {
        // The email is hashed: Redis keys are no place for addresses people typed.
        let digest = Sha256::digest(email.trim().to_lowercase().as_bytes());
        let account = self
            .redis
            .key(&format!("signin:account:{}", hex(&digest[..16])));
        let address = address.map(|a| self.redis.key(&format!("signin:address:{a}")));
        (account, address)
    }

    /// Refuse at once while the account or the address is locked.
    pub async fn check(&self, email: &str, address: Option<IpAddr>) -> Result<(), ApiError> {
        let (account, address) = self.keys(email, address);
        let mut invocation = CHECK.key(&account);
        if let Some(a) = &address {
            invocation.key(a);
        }
        let wait_ms: u64 = invocation
            .invoke_async(&mut self.redis.conn())
            .await
            .map_err(unavailable)?;
        if wait_ms == 0 {
            return Ok(());
        }
        metrics::counter!("signin_throttled_total").increment(1);
        let secs = wait_ms.div_ceil(1000);
        Err(ApiError::Throttled {
            limit: "sign_in_attempts",
            detail: format!(
                "too many failed sign-in attempts for this account or from this address; try again in {secs} s"
            ),
            retry_after: secs,
        })
    }

    /// Count a wrong password against the account and the address.
    pub async fn failed(&self, email: &str, address: Option<IpAddr>) -> Result<Failure, ApiError> {
        let (account, address) = self.keys(email, address);
        let s = &self.settings;
        let (failures, lock) = self.fail(&account, s.free_failures).await?;
        if let Some(a) = address {
            self.fail(&a, s.address_free_failures).await?;
        }
        Ok(Failure {
            failures,
            locked_now: failures == s.free_failures && lock > 0,
        })
    }

    async fn fail(&self, key: &str, free: u32) -> Result<(u32, u64), ApiError> {
        let s = &self.settings;
        FAIL.key(key)
            .arg(free)
            .arg(s.backoff_base.as_millis() as u64)
            .arg(s.backoff_max.as_millis() as u64)
            .arg(s.window.as_millis() as u64)
            .invoke_async(&mut self.redis.conn())
            .await
            .map_err(unavailable)
    }

    /// A success: the account starts over.
    pub async fn succeeded(&self, email: &str) -> Result<(), ApiError> {
        let (account, _) = self.keys(email, None);
        redis::cmd("DEL")
            .arg(account)
            .query_async::<()>(&mut self.redis.conn())
            .await
            .map_err(unavailable)
    }

    /// Run `hash` on the blocking pool once a hashing slot is free; a
    /// request that waits longer than a few seconds is told to come back.
    pub async fn hash<T: Send + 'static>(
        &self,
        hash: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let permit = tokio::time::timeout(
            Duration::from_secs(10),
            self.hashing.clone().acquire_owned(),
        )
        .await
        .map_err(|_| ApiError::Unavailable("sign-in is busy; try again in a few seconds".into()))?
        .map_err(|e| ApiError::Internal(e.into()))?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            hash()
        })
        .await
        .map_err(|e| ApiError::Internal(e.into()))
    }
}

fn unavailable(e: redis::RedisError) -> ApiError {
    tracing::error!(error = %e, "throttle state unreachable");
    ApiError::Unavailable("sign-in is unavailable for a moment; try again shortly".into())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Take a slot of `cap` named `name` (e.g. one tenant's uploads); `None` when
/// all are taken. A slot is freed when its [`Slot`] drops, or after `ttl` if
/// the process holding it died.
static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local t = redis.call('TIME')
        local now = t[1] * 1000 + math.floor(t[2] / 1000)
        redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
        if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
        redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
        redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
        return 1
        ",
    )
});

/// One of a limited number of concurrent slots, held in Redis.
pub struct Slot {
    redis: Redis,
    key: String,
    member: String,
}

/// Try to take one of `cap` slots of `name` for at most `ttl`.
pub async fn acquire_slot(
    redis: &Redis,
    name: &str,
    cap: usize,
    ttl: Duration,
) -> Result<Option<Slot>, ApiError> {
    let key = redis.key(&format!("slots:{name}"));
    let member = uuid::Uuid::new_v4().to_string();
    let taken: i32 = ACQUIRE
        .key(&key)
        .arg(cap)
        .arg(ttl.as_millis() as u64)
        .arg(&member)
        .invoke_async(&mut redis.conn())
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    Ok((taken == 1).then(|| Slot {
        redis: redis.clone(),
        key,
        member,
    }))
}

impl Drop for Slot {
    fn drop(&mut self) {
        let (redis, key, member) = (
            self.redis.clone(),
            std::mem::take(&mut self.key),
            std::mem::take(&mut self.member),
        );
        // Drop cannot await; a failed release is repaired by the slot's expiry.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _: Result<(), _> = redis::cmd("ZREM")
                    .arg(key)
                    .arg(member)
                    .query_async(&mut redis.conn())
                    .await;
            });
        }
    }
}
