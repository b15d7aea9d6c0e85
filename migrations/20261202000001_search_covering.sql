-- Search indexes that answer a page of any filter combination from the
-- index alone (issue 14; the measurements are in docs/benchmarks.md).
--
-- A page is the next `limit` matches in id order. The plain (value, id)
-- indexes of the first search migration gave that order for one filter, but
-- every further filter sent Postgres to the table row by row, or to a
-- bitmap of every row of the densest value followed by a sort: seconds at
-- four million contacts. Each index now carries the other filter columns
-- (INCLUDE), so the planner has, for every shape, a cheap plan:
-- - dense combinations: walk one index in id order (the id index, or the
--   index of a single-valued filter) and test the other filters on the
--   index tuple; a page costs about limit / selectivity tuples, no heap;
-- - sparse combinations: read the entries of the most selective filter's
--   values (an MCC, a category's MCC ranges), test the rest, sort the few
--   that match.
-- Index-only scans need the visibility map, which autovacuum keeps (and
-- `bizcontacts seed` vacuums after a bulk load).
--
-- `category` is derived from `mcc` (the ISO 18245 ranges), so search turns
-- a category into its MCC ranges and needs no category index.
DROP INDEX contacts_country_id;
DROP INDEX contacts_category_id;
DROP INDEX contacts_segment_id;
DROP INDEX contacts_type_id;
DROP INDEX contacts_mcc_id;
-- Superseded by contacts_search_id (same key, same predicate).
DROP INDEX contacts_active_idx;

CREATE INDEX contacts_search_id ON contacts (id)
    INCLUDE (country, segment, type, mcc) WHERE active;
CREATE INDEX contacts_search_country ON contacts (country, id)
    INCLUDE (segment, type, mcc) WHERE active;
CREATE INDEX contacts_search_segment ON contacts (segment, id)
    INCLUDE (country, type, mcc) WHERE active;
CREATE INDEX contacts_search_type ON contacts (type, id)
    INCLUDE (country, segment, mcc) WHERE active;
CREATE INDEX contacts_search_mcc ON contacts (mcc, id)
    INCLUDE (country, segment, type) WHERE active;
