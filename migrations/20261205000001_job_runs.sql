-- The admin dashboard (issue 20): each run of a job, with how it ended and
-- its error, for the job's detail page; and indexes for the job list's
-- filters at 1,000,000 jobs.

-- One row per run that ended without success. A run ends on four paths (a
-- worker's finish, a handler completing inside its own transaction, a lease
-- expiring, a worker releasing runs at shutdown); all of them clear
-- jobs.run_id, so one trigger records them all and no path can forget to.
-- The running attempt, and the run that succeeded, are the jobs row itself
-- (worker_id, started_at, finished_at): the common path, a job that
-- succeeds, writes nothing here (docs/benchmarks.md: the job benchmark
-- within noise of the build before).
CREATE TABLE job_runs (
    run_id     uuid PRIMARY KEY,
    job_id     uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt    integer NOT NULL,
    worker_id  text,
    started_at timestamptz,
    ended_at   timestamptz NOT NULL DEFAULT now(),
    -- The job's status right after the run: succeeded, failed, dead,
    -- cancelled, or queued (retried, waiting, released, lease expired).
    outcome    text NOT NULL,
    error      text,
    note       text
);
CREATE INDEX job_runs_job ON job_runs (job_id, attempt);

CREATE FUNCTION record_job_run() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_runs (run_id, job_id, attempt, worker_id, started_at, outcome, error, note)
    VALUES (
        OLD.run_id, NEW.id, OLD.attempts, OLD.worker_id, OLD.started_at, NEW.status,
        -- last_error keeps the previous run's error when a run ends without
        -- one: this run's error is the column only when the run failed.
        CASE WHEN NEW.status = 'cancelled' THEN NULL
             WHEN NEW.status IN ('failed', 'dead')
               OR NEW.last_error IS DISTINCT FROM OLD.last_error
               -- crates/queue/src/claim.rs, Finish::Retry
               OR NEW.waiting_reason LIKE 'retrying after an error%'
             THEN NEW.last_error END,
        NEW.waiting_reason
    )
    ON CONFLICT (run_id) DO NOTHING;
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_run_ended AFTER UPDATE OF run_id ON jobs
    FOR EACH ROW WHEN (OLD.run_id IS NOT NULL AND NEW.run_id IS DISTINCT FROM OLD.run_id
                       AND NEW.status <> 'succeeded')
    EXECUTE FUNCTION record_job_run();

-- The job list is newest first (ORDER BY id DESC, uuid v7; a time range is
-- an id range). A tenant filter has jobs_tenant_list. Kind and status have
-- (kind, status, id) for the rare statuses a job ends in or waits in;
-- succeeded (the common one) the primary key finds at once, and queued and
-- running are left out so that the hot path (enqueue, claim, finish) writes
-- nothing here: there (kind, status) finds them and sorts. (kind, status)
-- also counts the overview: with id in it, that count of 1,000,000 jobs took
-- 1.6x as long. Failed and dead jobs, what an operator looks for, have their own.
CREATE INDEX jobs_kind_status_list ON jobs (kind, status, id DESC)
    WHERE status IN ('failed', 'dead', 'cancelled', 'deferred');
CREATE INDEX jobs_failed_list ON jobs (id DESC) WHERE status IN ('failed', 'dead');
-- "Text in last error": trigram search, as the corpus search does.
CREATE INDEX jobs_last_error_trgm ON jobs USING gin (last_error gin_trgm_ops)
    WHERE last_error IS NOT NULL;
