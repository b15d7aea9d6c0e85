//! Redis transport through apalis-redis: one apalis queue per job kind.
//!
//! Only `JobMessage`s travel here (job id + generation); the ledger decides
//! everything else. Pushes carry an idempotency key `job_id:generation`, so
//! the relay can re-push freely: a generation still in Redis is not added
//! twice. Finished apalis tasks are trimmed here (apalis-redis keeps them
//! forever), and queue depth is read straight from the keys apalis names.
//!
//! apalis-redis 1.0 puts every pushed task in the `:scheduled` set and its
//! fetch script moves *all* due tasks to `:active` with one Lua `unpack`,
//! which fails for good once about 8,000 are due. So pushes go in chunks of
//! [`CHUNK`], each followed by our own bounded promotion, and the relay runs the
//! same promotion for whatever piles up while no worker fetches.

use crate::job::JobMessage;
use crate::redis_conn::Redis;
use crate::QueueError;
use apalis::prelude::{TaskBuilder, TaskSink};
use apalis_redis::{Config, RedisStorage};
use futures::stream;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Largest push, and largest promotion step; well under the 8,000 limit.
pub const CHUNK: usize = 1000;

/// Move up to ARGV[2] due tasks from `:scheduled` to `:active`.
const PROMOTE: &str = r"local ids = redis.call('ZRANGEBYSCORE', KEYS[1], 0, ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #ids > 0 then
  redis.call('RPUSH', KEYS[2], unpack(ids))
  redis.call('ZREM', KEYS[1], unpack(ids))
end
return #ids";

/// How long a pushed generation's idempotency key lives in Redis.
const IDEMPOTENCY_TTL: Duration = Duration::from_secs(3600);

#[derive(Clone)]
pub struct Transport {
    redis: Redis,
    storages: Arc<BTreeMap<String, RedisStorage<JobMessage>>>,
}

impl Transport {
    /// Queues for `kinds`, under the deployment's key prefix.
    ///
    /// `heartbeat` is apalis's worker heartbeat; a worker that misses beats
    /// for `orphan_after` has its in-flight deliveries re-queued by the others
    /// (the ledger's leases are the real guard; this only returns deliveries
    /// to Redis sooner than the relay's stale-push rule would).
    pub fn new(
        redis: Redis,
        kinds: impl IntoIterator<Item = &'static str>,
        heartbeat: Duration,
        orphan_after: Duration,
    ) -> Self {
        let missed = (orphan_after.as_millis() / heartbeat.as_millis().max(1)).max(3) as usize;
        let storages = kinds
            .into_iter()
            .map(|kind| {
                let config = Config::default()
                    .queue(redis.key(&format!("jobs:{kind}")))
                    // The ledger holds leases; apalis's own task locks would
                    // only cost a round trip per task.
                    .lock_tasks(false)
                    // One publish per task otherwise; nobody subscribes.
                    .emit_events(false)
                    .batch_size(100)
                    .idempotency_ttl(Some(IDEMPOTENCY_TTL))
                    .heartbeat_interval(heartbeat)
                    .missed_heartbeats(missed);
                (
                    kind.to_string(),
                    RedisStorage::new(redis.conn()).with_config(config),
                )
            })
            .collect();
        Self {
            redis,
            storages: Arc::new(storages),
        }
    }

    /// The apalis storage of a kind (workers consume from it).
    pub fn storage(&self, kind: &str) -> Option<RedisStorage<JobMessage>> {
        self.storages.get(kind).cloned()
    }

    /// Push messages, grouped by kind, one bulk push per kind.
    pub async fn push(&self, messages: &[(String, JobMessage)]) -> Result<(), QueueError> {
        let mut by_kind: BTreeMap<&str, Vec<&JobMessage>> = BTreeMap::new();
        for (kind, m) in messages {
            by_kind.entry(kind.as_str()).or_default().push(m);
        }
        for (kind, batch) in by_kind {
            let mut storage = self
                .storage(kind)
                .ok_or_else(|| QueueError::UnknownKind(kind.to_string()))?;
            for chunk in batch.chunks(CHUNK) {
                let tasks: Vec<_> = chunk
                    .iter()
                    .map(|m| {
                        TaskBuilder::new((*m).clone())
                            .idempotency_key(format!("{}:{}", m.job_id, m.seq))
                            .build()
                    })
                    .collect();
                storage
                    .push_all(&mut stream::iter(tasks))
                    .await
                    .map_err(|e| QueueError::Push(e.to_string()))?;
                self.promote(kind, CHUNK).await?;
            }
        }
        Ok(())
    }

    /// Promote up to `max` due tasks of a kind to its ready list; returns how many.
    pub async fn promote(&self, kind: &str, max: usize) -> Result<u64, QueueError> {
        let Some(storage) = self.storages.get(kind) else {
            return Ok(0);
        };
        let c = storage.get_config();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut conn = self.redis.conn();
        Ok(redis::Script::new(PROMOTE)
            .key(c.scheduled_jobs_set())
            .key(c.active_jobs_list())
            .arg(now)
            .arg(max.min(CHUNK))
            .invoke_async(&mut conn)
            .await?)
    }

    /// Tasks waiting in Redis for a kind (ready + scheduled).
    pub async fn depth(&self, kind: &str) -> Result<u64, QueueError> {
        let Some(storage) = self.storages.get(kind) else {
            return Ok(0);
        };
        let c = storage.get_config();
        let mut conn = self.redis.conn();
        let (ready, scheduled): (u64, u64) = redis::pipe()
            .llen(c.active_jobs_list())
            .zcard(c.scheduled_jobs_set())
            .query_async(&mut conn)
            .await?;
        Ok(ready + scheduled)
    }

    /// Remove up to `max` finished tasks (done and dead sets) of a kind with
    /// their data and metadata; apalis-redis never does.
    pub async fn trim_finished(&self, kind: &str, max: usize) -> Result<u64, QueueError> {
        let Some(storage) = self.storages.get(kind) else {
            return Ok(0);
        };
        let c = storage.get_config();
        let script = redis::Script::new(
            r"local n = 0
              for _, set in ipairs({KEYS[1], KEYS[2]}) do
                local ids = redis.call('SPOP', set, ARGV[1])
                for _, id in ipairs(ids) do
                  redis.call('HDEL', KEYS[3], id)
                  redis.call('DEL', KEYS[4] .. ':' .. id)
                  n = n + 1
                end
              end
              return n",
        );
        let mut conn = self.redis.conn();
        Ok(script
            .key(c.done_jobs_set())
            .key(c.dead_jobs_set())
            .key(c.job_data_hash())
            .key(c.job_meta_hash())
            .arg(max)
            .invoke_async(&mut conn)
            .await?)
    }

    /// True when Redis lost its data since we last looked: the epoch key is
    /// gone (restart without persistence, FLUSHALL). Sets it again.
    pub async fn epoch_was_lost(&self) -> Result<bool, QueueError> {
        let mut conn = self.redis.conn();
        let set: Option<String> = redis::cmd("SET")
            .arg(self.redis.key("epoch"))
            .arg(chrono::Utc::now().to_rfc3339())
            .arg("NX")
            .query_async(&mut conn)
            .await?;
        Ok(set.is_some())
    }
}
