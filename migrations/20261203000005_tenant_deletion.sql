-- A tenant's scheduled deletion: when, why, by whom, and the job that will
-- do it (cancellable until it starts).
ALTER TABLE tenants
    ADD COLUMN delete_after        timestamptz,
    ADD COLUMN delete_reason       text CHECK (length(delete_reason) <= 500),
    ADD COLUMN delete_requested_by uuid,
    ADD COLUMN delete_job_id       uuid;
