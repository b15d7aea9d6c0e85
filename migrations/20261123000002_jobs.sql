-- The job ledger: the truth about every job. Redis only carries job ids to
-- workers; anything there can be lost and is rebuilt from these rows.

CREATE TABLE jobs (
    id               uuid PRIMARY KEY,
    -- NULL for platform jobs (quota_reset, billing_reconcile).
    tenant_id        uuid REFERENCES tenants (id) ON DELETE CASCADE,
    kind             text NOT NULL,
    -- Never secrets: handlers read those from their encrypted stores.
    params           jsonb NOT NULL DEFAULT '{}'::jsonb,
    status           text NOT NULL CHECK (status IN ('queued', 'deferred', 'running', 'succeeded', 'failed', 'cancelled', 'dead')),
    attempts         integer NOT NULL DEFAULT 0,
    max_attempts     integer NOT NULL CHECK (max_attempts >= 1),
    progress_done    bigint NOT NULL DEFAULT 0,
    progress_total   bigint,
    progress_message text,
    last_error       text,
    -- Why a deferred or retrying job waits, in words a user understands.
    waiting_reason   text,
    idempotency_key  text,
    -- Not before this time (retry backoff, scheduled work).
    run_after        timestamptz NOT NULL DEFAULT now(),
    created_at       timestamptz NOT NULL DEFAULT now(),
    -- When it last became queued: the start of enqueue-to-start latency.
    queued_at        timestamptz NOT NULL DEFAULT now(),
    -- When it was last handed to Redis; NULL means "due for a push".
    pushed_at        timestamptz,
    -- Bumped each time the job is queued again; with the id it makes the
    -- transport's idempotency key, so re-pushing the same generation is a no-op.
    push_seq         integer NOT NULL DEFAULT 0,
    started_at       timestamptz,
    finished_at      timestamptz,
    -- The claim of the current run: which worker, which run, until when.
    worker_id        text,
    run_id           uuid,
    lease_until      timestamptz,
    cancel_requested boolean NOT NULL DEFAULT false,
    created_by       uuid REFERENCES users (id) ON DELETE SET NULL,
    CHECK ((status = 'running') = (run_id IS NOT NULL AND lease_until IS NOT NULL))
);

-- Same key, same job: per tenant, and once among platform jobs (NULL tenant).
CREATE UNIQUE INDEX jobs_idempotency_key ON jobs (tenant_id, idempotency_key) NULLS NOT DISTINCT
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX jobs_tenant_list ON jobs (tenant_id, id DESC);
CREATE INDEX jobs_admitted ON jobs (tenant_id) WHERE status IN ('queued', 'running');
CREATE INDEX jobs_deferred ON jobs (tenant_id, id) WHERE status = 'deferred';
CREATE INDEX jobs_unpushed ON jobs (run_after) WHERE status = 'queued';
CREATE INDEX jobs_leases ON jobs (lease_until) WHERE status = 'running';
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX jobs_kind_status ON jobs (kind, status);
