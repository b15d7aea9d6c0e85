-- Contact search and saved contacts.
--
-- Free text (`q`) is matched with trigrams (pg_trgm): company and person
-- names are short proper nouns where typos are one or two characters, which
-- trigram similarity tolerates and full-text search (stemming, dictionaries)
-- does not. The extension ships with PostgreSQL's contrib modules; creating
-- it needs a superuser once per database (the local and test setups run as
-- postgres).
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- The text `q` is compared with; an immutable expression so it can be indexed.
CREATE FUNCTION contact_search_text(company text, first text, last text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN lower(coalesce(company, '') || ' ' || coalesce(first, '') || ' ' || coalesce(last, ''));

CREATE INDEX contacts_search_text ON contacts
    USING gin (contact_search_text(company_name, first_name, last_name) gin_trgm_ops) WHERE active;

-- One index per filter, ordered by id within a value: a single-filter search
-- reads its page straight off the index in keyset order.
CREATE INDEX contacts_country_id ON contacts (country, id) WHERE active;
CREATE INDEX contacts_category_id ON contacts (category, id) WHERE active;
CREATE INDEX contacts_segment_id ON contacts (segment, id) WHERE active;
CREATE INDEX contacts_type_id ON contacts (type, id) WHERE active;
CREATE INDEX contacts_mcc_id ON contacts (mcc, id) WHERE active;

-- A tenant's lead list.
CREATE TABLE saved_contacts (
    -- Time-ordered: the list's cursor.
    id         uuid PRIMARY KEY,
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    contact_id uuid NOT NULL REFERENCES contacts (id),
    saved_by   uuid REFERENCES users (id) ON DELETE SET NULL,
    saved_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, contact_id)
);
CREATE INDEX saved_contacts_list ON saved_contacts (tenant_id, id);
