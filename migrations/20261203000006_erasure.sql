-- Erasure of one contact from the shared corpus (privacy policy:
-- "deletion"): the contact row stays as an empty, inactive tombstone (so a
-- tenant's saved contact or push record shows it as withdrawn), and the
-- hashes of its blocking keys are kept, so the same person imported again
-- waits for a reviewer instead of coming back silently.
ALTER TABLE contacts ADD COLUMN erased_at timestamptz;

CREATE TABLE erased_keys (
    key        bigint NOT NULL,
    contact_id uuid NOT NULL REFERENCES contacts (id),
    erased_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (key, contact_id)
);
