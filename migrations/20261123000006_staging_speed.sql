-- Staging a million-row import is bound by Postgres: three per-row costs go.

-- 1. Uploads are held only until their rows are staged: compressing them
-- with pglz (the default) cost the upload about 2.5 s per 175 MB, and the job
-- more to decompress it. lz4 is several times faster both ways.
ALTER TABLE import_uploads ALTER COLUMN data SET COMPRESSION lz4;

-- 2. The foreign key from staged_rows to imports ran one lookup and one row
-- lock per staged row (a quarter to a third of the COPY's time). The same
-- rule, checked once per statement: every batch a statement stages must
-- exist, and is locked FOR KEY SHARE (what the foreign key's check takes) so
-- that it cannot be deleted before the rows commit. Deleting a batch still
-- deletes its rows.
ALTER TABLE staged_rows DROP CONSTRAINT staged_rows_import_id_fkey;

CREATE FUNCTION staged_rows_check_imports() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    missing uuid;
BEGIN
    PERFORM 1 FROM imports
     WHERE id IN (SELECT DISTINCT import_id FROM added)
     ORDER BY id
       FOR KEY SHARE;
    SELECT a.import_id INTO missing
      FROM (SELECT DISTINCT import_id FROM added) a
     WHERE NOT EXISTS (SELECT 1 FROM imports i WHERE i.id = a.import_id)
     LIMIT 1;
    IF FOUND THEN
        RAISE foreign_key_violation USING
            MESSAGE = format('staged rows refer to import %s, which does not exist', missing),
            CONSTRAINT = 'staged_rows_import_id_fkey',
            TABLE = 'staged_rows';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER staged_rows_import_exists
    AFTER INSERT ON staged_rows
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION staged_rows_check_imports();

-- Rows never move between batches (nothing updates import_id); refuse it
-- rather than check it.
CREATE FUNCTION staged_rows_keep_import() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.import_id IS DISTINCT FROM OLD.import_id THEN
        RAISE foreign_key_violation USING
            MESSAGE = 'a staged row cannot move to another import',
            CONSTRAINT = 'staged_rows_import_id_fkey',
            TABLE = 'staged_rows';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER staged_rows_import_fixed
    BEFORE UPDATE OF import_id ON staged_rows
    FOR EACH ROW EXECUTE FUNCTION staged_rows_keep_import();

-- ON DELETE CASCADE, once per statement (also when a tenant's deletion
-- cascades to its imports).
CREATE FUNCTION imports_delete_staged_rows() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM staged_rows WHERE import_id IN (SELECT id FROM gone);
    RETURN NULL;
END $$;

CREATE TRIGGER imports_cascade_staged_rows
    AFTER DELETE ON imports
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION imports_delete_staged_rows();

-- 3. A row's raw values as one text, joined by U+001F with `\` and U+001F
-- escaped inside values (`\\`, `\s`; see staged_rows::join_raw): the text[]
-- spent a sixth of each staged row on element headers and alignment, and its
-- parsing per element.
CREATE FUNCTION pg_temp.join_raw(vals text[]) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT string_agg(replace(replace(v, '\', '\\'), chr(31), '\s'), chr(31) ORDER BY n)
      FROM unnest(vals) WITH ORDINALITY AS u(v, n)
$$;
ALTER TABLE staged_rows ALTER COLUMN raw TYPE text USING coalesce(pg_temp.join_raw(raw), '');
