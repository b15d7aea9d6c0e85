-- The recent level of the blocking index takes keys without a uniqueness
-- check (issue 17, docs/benchmarks.md). Filing a chunk's keys with
-- `ON CONFLICT DO NOTHING` probed the index, inserted the row, then
-- inserted into the index again under a speculative token: measured here,
-- 2,080,000 keys in 80 statements took 14.3 s that way and 10.2 s as plain
-- inserts into a non-unique index. A pair filed twice (a row merged into a
-- contact under a key over the cap, whose entries the plan never saw) is
-- harmless: look-ups count a pair once, removals delete every copy, and the
-- move into `contact_keys`, which stays unique, keeps one.
ALTER TABLE contact_keys_recent DROP CONSTRAINT contact_keys_recent_pkey;
CREATE INDEX contact_keys_recent_key ON contact_keys_recent (key, contact_id);
