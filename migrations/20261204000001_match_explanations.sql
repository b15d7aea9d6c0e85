-- Why the matcher decided (issue 17): per field, the comparison level and
-- its weight in bits, with the pair's match probability. Kept with the
-- reviewer's candidate pair and with the merged row (its provenance).
ALTER TABLE match_candidates ADD COLUMN explanation jsonb;
ALTER TABLE staged_rows ADD COLUMN match_explanation jsonb;
