-- The jobs each schedule's tick enqueued, found by their idempotency key's
-- prefix (`schedule:<name>:<tick>`), for the admin schedules view.
CREATE INDEX jobs_schedule_key ON jobs (idempotency_key text_pattern_ops)
    WHERE idempotency_key LIKE 'schedule:%';
