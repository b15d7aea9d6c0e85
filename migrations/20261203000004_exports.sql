-- A tenant's export of its own data (privacy policy: "access ... export"):
-- a ZIP made by an `export` job, kept in chunks like uploads, downloadable
-- until it expires (then the retention job drops its bytes).
CREATE TABLE exports (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    job_id      uuid REFERENCES jobs (id) ON DELETE SET NULL,
    status      text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'ready', 'failed')),
    byte_size   bigint NOT NULL DEFAULT 0,
    -- Per file of the ZIP: its row count (the manifest's numbers).
    files       jsonb,
    error       text,
    created_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    ready_at    timestamptz,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX exports_tenant_idx ON exports (tenant_id, id);
CREATE INDEX exports_expires_idx ON exports (expires_at);

CREATE TABLE export_chunks (
    export_id uuid NOT NULL REFERENCES exports (id) ON DELETE CASCADE,
    seq       integer NOT NULL,
    data      bytea NOT NULL,
    PRIMARY KEY (export_id, seq)
);
