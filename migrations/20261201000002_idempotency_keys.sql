-- An Idempotency-Key names one request: the endpoint it was sent to and a
-- hash of what it asked for. The same request with the same key returns
-- what the first one created; the key on another endpoint, or with another
-- body, is refused (Stripe's rule). One table for every endpoint that takes
-- a key, so a key cannot mean a batch on one endpoint and a job on another.
CREATE TABLE idempotency_keys (
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    key          text NOT NULL,
    -- e.g. 'POST /v1/tenants/{tenant_id}/imports/csv'
    endpoint     text NOT NULL,
    -- SHA-256 of the request's meaningful content (the upload, the rows, the job).
    request_hash bytea NOT NULL,
    -- What the first request created: an import batch or a job.
    resource_id  uuid NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);
