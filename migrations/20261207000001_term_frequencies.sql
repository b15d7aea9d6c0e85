-- The corpus's frequent company and person names (issue 17): exact
-- agreement on a common value is weaker evidence of a match than on a rare
-- one (crates/matching/src/frequency.rs). Counted from the active contacts
-- by the dedupe job when the counts are older than
-- dedupe.term_frequency_max_age_secs or the corpus has doubled since
-- (crates/store/src/term_frequencies.rs); only values counted
-- dedupe.term_frequency_min_count times or more are kept, so the table
-- stays small whatever the corpus holds.
CREATE TABLE term_frequencies (
    -- crates/matching Field names: company_name, first_name, last_name.
    field text NOT NULL,
    -- As matching compares it: no case, accents, punctuation or legal form.
    value text NOT NULL,
    -- Contacts bearing a first or last name; places (company with city)
    -- bearing a company name.
    count bigint NOT NULL CHECK (count > 0),
    PRIMARY KEY (field, value)
);

-- One row: what the counts were taken out of, and when.
CREATE TABLE term_frequency_counts (
    only_row     boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    contacts     bigint NOT NULL,
    places       bigint NOT NULL,
    first_names  bigint NOT NULL,
    last_names   bigint NOT NULL,
    min_count    bigint NOT NULL,
    refreshed_at timestamptz NOT NULL DEFAULT now()
);
