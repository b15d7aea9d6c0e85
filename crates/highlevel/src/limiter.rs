//! HighLevel's request budget per Location, shared by every worker process:
//! a sliding window (at most `burst` requests in any `window`) and a daily
//! count, kept in Redis and checked in one Lua script, so that pulls and
//! pushes for one Location on any number of workers together never exceed
//! what HighLevel allows (100 per 10 s, 200,000 a day).
//!
//! The window is a sorted set of request times (Redis's own clock, so
//! workers on machines whose clocks differ agree); a request that does not
//! fit is told how long until the oldest leaves the window. The window is
//! counted a little longer than HighLevel's ([`padded`]): a slot is taken
//! when a request leaves, HighLevel counts it when it arrives, and a request
//! delayed on the way (a new connection, a slow hop) would otherwise land
//! inside HighLevel's window with the next burst. The daily count resets at
//! 00:00 UTC.

use redis::aio::ConnectionManager;
use std::time::Duration;

/// The budget of one Location.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub burst: u32,
    pub window: Duration,
    pub daily: u32,
}

/// What asking for a request gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// Send it now.
    Go,
    /// The burst window is full: ask again after this.
    Wait(Duration),
    /// Today's budget is spent: the work waits for the next UTC day.
    DailySpent(Duration),
}

/// Checks and takes one request slot, atomically. KEYS: window set, daily
/// counter. ARGV: burst, window ms, daily limit, a unique member.
const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local burst, window, daily = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local used = tonumber(redis.call('GET', KEYS[2]) or '0')
local midnight = (86400 - (tonumber(t[1]) % 86400)) * 1000
if used >= daily then
  return {2, midnight}
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= burst then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {1, math.max(1, tonumber(oldest[2]) + window - now)}
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], window)
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], midnight)
return {0, 0}
"#;

#[derive(Clone)]
pub struct Limiter {
    conn: ConnectionManager,
    prefix: String,
    budget: Budget,
    script: redis::Script,
}

impl Limiter {
    pub fn new(conn: ConnectionManager, prefix: &str, budget: Budget) -> Self {
        Limiter {
            conn,
            prefix: prefix.to_string(),
            budget,
            script: redis::Script::new(SCRIPT),
        }
    }

    /// Take a slot for one request to `location`, or say how long to wait.
    pub async fn try_acquire(&self, location: &str) -> redis::RedisResult<Permit> {
        let day = chrono::Utc::now().format("%Y%m%d");
        let (code, ms): (i64, i64) = self
            .script
            .key(format!("{}:hl:burst:{location}", self.prefix))
            .key(format!("{}:hl:daily:{location}:{day}", self.prefix))
            .arg(self.budget.burst)
            .arg(padded(self.budget.window).as_millis() as u64)
            .arg(self.budget.daily)
            .arg(uuid_like())
            .invoke_async(&mut self.conn.clone())
            .await?;
        let wait = Duration::from_millis(ms.max(0) as u64);
        Ok(match code {
            0 => Permit::Go,
            1 => Permit::Wait(wait),
            _ => Permit::DailySpent(wait),
        })
    }

    /// Wait for a slot (bursts), or return how long until the daily budget
    /// opens again.
    pub async fn acquire(&self, location: &str) -> redis::RedisResult<Result<(), Duration>> {
        loop {
            match self.try_acquire(location).await? {
                Permit::Go => return Ok(Ok(())),
                Permit::Wait(d) => tokio::time::sleep(d).await,
                Permit::DailySpent(d) => return Ok(Err(d)),
            }
        }
    }
}

/// The window as counted here: 2.5% and 50 ms longer than HighLevel's
/// (10.3 s for its 10 s: at most 97% of its rate, and no 429 from requests
/// that took different times to arrive).
pub fn padded(window: Duration) -> Duration {
    window + window / 40 + Duration::from_millis(50)
}

/// A member unique across processes: the window set counts members.
fn uuid_like() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}
