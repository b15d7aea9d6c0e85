-- When the worker running a job last renewed its lease (shown to operators;
-- lease_until says when the claim lapses).
ALTER TABLE jobs ADD COLUMN heartbeat_at timestamptz;
