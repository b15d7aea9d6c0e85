-- The blocking index in two levels (issue 17; docs/benchmarks.md, "dedupe
-- speed", has the measurements).
--
-- Filing a key is one insert into a random leaf of `contact_keys`' primary
-- key: 550 MB at 1,000,000 contacts, far more than shared buffers. Between
-- two checkpoints nearly every leaf is touched again, and its first touch
-- after a checkpoint writes the whole 8 KB page to the WAL: 24 GB of WAL
-- for 10 M keys, the largest cost of a big dedupe. So new keys go to a
-- small table first, whose index stays in memory and costs little WAL, and
-- when it holds `dedupe.recent_keys_max` keys they move into
-- `contact_keys` in one statement, in key order: each leaf of the big index
-- is written once per move, not once per key.
--
-- Look-ups read both tables. Like `contact_keys`, this one is only written
-- under the corpus lock (crates/store/src/corpus.rs).
CREATE TABLE contact_keys_recent (
    key        bigint NOT NULL,
    contact_id uuid NOT NULL,
    PRIMARY KEY (key, contact_id)
);

-- How many keys `contact_keys_recent` has taken since the last move (an
-- upper bound: keys removed since are not subtracted). One row.
CREATE TABLE contact_keys_recent_count (
    one  boolean PRIMARY KEY DEFAULT true CHECK (one),
    keys bigint NOT NULL DEFAULT 0
);
INSERT INTO contact_keys_recent_count DEFAULT VALUES;

-- Every key filed, whichever level holds it: for reading, never for writing.
CREATE VIEW contact_keys_filed AS
    SELECT key, contact_id FROM contact_keys
    UNION ALL
    SELECT key, contact_id FROM contact_keys_recent;
