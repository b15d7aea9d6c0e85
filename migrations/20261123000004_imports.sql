-- Import batches, their uploaded bytes, and the rows they stage for review.

CREATE TABLE imports (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    source          text NOT NULL CHECK (source IN ('csv', 'api', 'manual', 'crm')),
    -- queued -> processing -> staged | failed | cancelled
    status          text NOT NULL CHECK (status IN ('queued', 'processing', 'staged', 'failed', 'cancelled')),
    job_id          uuid REFERENCES jobs (id) ON DELETE SET NULL,
    idempotency_key text,
    filename        text,
    byte_size       bigint NOT NULL DEFAULT 0,
    -- Detected by the intake while the upload streams in: 'utf-8' or 'windows-1252'.
    encoding        text NOT NULL DEFAULT 'utf-8' CHECK (encoding IN ('utf-8', 'windows-1252')),
    -- Detected by the import job from the first lines.
    delimiter       text,
    header          text[],
    -- The field each header column maps to, null for columns kept as extra data.
    mapping         text[],
    -- Checkpoint: data rows read so far (staged or beyond the daily limit).
    rows_done       integer NOT NULL DEFAULT 0,
    total_rows      integer NOT NULL DEFAULT 0,
    valid_rows      integer NOT NULL DEFAULT 0,
    invalid_rows    integer NOT NULL DEFAULT 0,
    duplicate_rows  integer NOT NULL DEFAULT 0,
    -- Rows beyond the package's import rows per day: read, counted, not staged.
    not_staged_rows integer NOT NULL DEFAULT 0,
    approved_rows   integer NOT NULL DEFAULT 0,
    rejected_rows   integer NOT NULL DEFAULT 0,
    merged_rows     integer NOT NULL DEFAULT 0,
    created_rows    integer NOT NULL DEFAULT 0,
    -- Why the batch failed as a whole, or a note on a staged batch (limit reached).
    message         text,
    created_by      uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);
CREATE INDEX imports_tenant_idx ON imports (tenant_id, id);
CREATE UNIQUE INDEX imports_idempotency_key ON imports (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- The upload as received, in chunks of up to 1 MiB, so neither the intake nor
-- the job ever holds a whole file. Deleted once the rows are staged.
CREATE TABLE import_uploads (
    import_id uuid NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
    seq       integer NOT NULL,
    data      bytea NOT NULL,
    PRIMARY KEY (import_id, seq)
);

CREATE TABLE staged_rows (
    id           uuid PRIMARY KEY,
    import_id    uuid NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
    -- Data rows counted from 1, as the uploader sees them in a spreadsheet.
    row_number   integer NOT NULL CHECK (row_number > 0),
    status       text NOT NULL CHECK (status IN ('valid', 'invalid', 'approved', 'rejected', 'merged')),
    -- The values as received, aligned with imports.header (longer when the row had more fields).
    raw          text[] NOT NULL,
    company_name text,
    first_name   text,
    last_name    text,
    email        text,
    phone        text,
    website      text,
    domain       text,
    address      text,
    city         text,
    postcode     text,
    region       text,
    country      text,
    segment      text,
    type         text,
    mcc          text,
    category     text,
    -- [{field, value, reason}], null when the row is valid.
    errors       jsonb,
    -- Hash of the trimmed raw values: equal fingerprints are exact duplicates.
    fingerprint  bytea NOT NULL,
    -- The first row of this batch that this row repeats exactly.
    duplicate_of integer,
    contact_id   uuid,
    outcome      text CHECK (outcome IN ('merged', 'created')),
    decided_by   uuid REFERENCES users (id) ON DELETE SET NULL,
    decided_at   timestamptz,
    -- Staging is resumable: a row can never be staged twice.
    UNIQUE (import_id, row_number),
    CHECK ((status = 'invalid') = (errors IS NOT NULL) OR status IN ('rejected'))
);
