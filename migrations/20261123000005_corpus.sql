-- The governed corpus: canonical contacts, the staged rows that contributed
-- to them (provenance), blocking keys for matching, possible matches for a
-- reviewer, tenants' corrections, quarantine and whole-corpus sweeps.

CREATE TABLE contacts (
    id           uuid PRIMARY KEY,
    -- Current values, derived from the contributing rows (survivorship,
    -- crates/store/src/corpus.rs); never edited by hand.
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
    -- Fields whose current value comes from a reviewed correction.
    corrected_fields text[] NOT NULL DEFAULT '{}',
    -- False once no contributing row remains (quarantine) or the contact was
    -- merged into another by a sweep: it is then out of search.
    active       boolean NOT NULL DEFAULT true,
    merged_into  uuid REFERENCES contacts (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX contacts_active_idx ON contacts (id) WHERE active;

-- Blocking keys ("e:<email>", "p:<phone>", "c:<company>|<city>", ...; see
-- crates/matching) of every active contributing row: a new row is only
-- compared with the contacts that share one of its keys. Stored as 64-bit
-- hashes (`block_id`): a third of the index a text key needs, and compared
-- without collation; at millions of contacts the lookups are the hot path.
-- No foreign key and no index by contact: each would add a random index
-- probe or insert per key filed, the dominant cost of dedupe at scale.
-- Keys are only written under the corpus lock by code that derives them
-- from the rows (crates/store/src/corpus.rs), and removed the same way;
-- contacts are never deleted, only deactivated.
CREATE TABLE contact_keys (
    key        bigint NOT NULL,
    contact_id uuid NOT NULL,
    PRIMARY KEY (key, contact_id)
);

-- Provenance: a row that merged into or created a contact says which and
-- when; with its batch (tenant, source) that is every contributed value's origin.
ALTER TABLE staged_rows
    ADD COLUMN merged_at timestamptz,
    -- Corrections: the contact the row corrects (matching is skipped).
    ADD COLUMN target_contact_id uuid REFERENCES contacts (id) ON DELETE SET NULL;
ALTER TABLE staged_rows
    ADD CONSTRAINT staged_rows_contact_fk FOREIGN KEY (contact_id) REFERENCES contacts (id);
CREATE INDEX staged_rows_contact_idx ON staged_rows (contact_id) WHERE contact_id IS NOT NULL;

ALTER TABLE imports DROP CONSTRAINT imports_source_check;
ALTER TABLE imports ADD CONSTRAINT imports_source_check
    CHECK (source IN ('csv', 'api', 'manual', 'crm', 'correction'));
ALTER TABLE imports
    ADD COLUMN quarantined_at timestamptz,
    ADD COLUMN quarantined_by uuid REFERENCES users (id) ON DELETE SET NULL,
    ADD COLUMN quarantine_reason text;

-- A pair scored between "different" and "same": the row waits, approved,
-- until a reviewer says whether it is that contact.
CREATE TABLE match_candidates (
    row_id     uuid NOT NULL REFERENCES staged_rows (id) ON DELETE CASCADE,
    contact_id uuid NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    score      real NOT NULL,
    decision   text CHECK (decision IN ('same', 'different')),
    decided_by uuid REFERENCES users (id) ON DELETE SET NULL,
    decided_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (row_id, contact_id)
);
CREATE INDEX match_candidates_open_idx ON match_candidates (row_id) WHERE decision IS NULL;

-- A tenant's fix to a contact's field: shown to that tenant at once, and
-- staged (row_id) for review into the corpus like any import.
CREATE TABLE corrections (
    id         uuid PRIMARY KEY,
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    contact_id uuid NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    field      text NOT NULL,
    value      text NOT NULL,
    note       text,
    row_id     uuid NOT NULL REFERENCES staged_rows (id) ON DELETE CASCADE,
    created_by uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX corrections_contact_idx ON corrections (tenant_id, contact_id, created_at);

-- Whole-corpus sweeps (dedupe with `sweep`): a resumable cursor, counters,
-- and the merge candidates found.
CREATE TABLE sweeps (
    job_id     uuid PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    apply      boolean NOT NULL,
    -- The last contact id checked (contacts are visited in id order).
    cursor     uuid,
    checked    bigint NOT NULL DEFAULT 0,
    candidates bigint NOT NULL DEFAULT 0,
    merged     bigint NOT NULL DEFAULT 0
);
CREATE TABLE sweep_candidates (
    job_id    uuid NOT NULL REFERENCES sweeps (job_id) ON DELETE CASCADE,
    contact_a uuid NOT NULL,
    contact_b uuid NOT NULL,
    score     real NOT NULL,
    merged    boolean NOT NULL DEFAULT false,
    PRIMARY KEY (job_id, contact_a, contact_b)
);
