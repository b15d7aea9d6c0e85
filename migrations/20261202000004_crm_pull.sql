-- CRM pulls (issue 16): batches whose rows come from the tenant's HighLevel
-- Location. Their source reads `crm_pull` (it was `crm`, never written), and
-- the pull's paging position is kept with the batch, committed with each
-- page's rows, so a pull resumes where it stopped.
ALTER TABLE imports DROP CONSTRAINT imports_source_check;
UPDATE imports SET source = 'crm_pull' WHERE source = 'crm';
ALTER TABLE imports ADD CONSTRAINT imports_source_check
    CHECK (source IN ('csv', 'api', 'manual', 'crm_pull', 'correction'));
ALTER TABLE imports ADD COLUMN pull_cursor jsonb;
