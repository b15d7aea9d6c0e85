-- What the retention job reads by age: each rule's rows found by an index,
-- so a daily pass over a large ledger is a range scan, not a table scan.
CREATE INDEX audit_events_at_idx ON audit_events (at);
CREATE INDEX stripe_events_received_idx ON stripe_events (received_at);
CREATE INDEX crm_contact_events_received_idx ON crm_contact_events (received_at);
CREATE INDEX staged_rows_rejected_idx ON staged_rows (decided_at) WHERE status = 'rejected';
CREATE INDEX sessions_expires_idx ON sessions (expires_at);
CREATE INDEX invitations_expires_idx ON invitations (expires_at) WHERE accepted_at IS NULL;
