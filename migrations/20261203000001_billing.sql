-- Billing: each tenant's link to Stripe, where its package comes from, and
-- the Stripe events already taken (each once).

CREATE TABLE tenant_billing (
    tenant_id              uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    -- Where tenants.package comes from: a paid subscription ('checkout'), a
    -- platform admin ('manual'), or neither ('default').
    source                 text NOT NULL DEFAULT 'default'
                           CHECK (source IN ('default', 'checkout', 'manual')),
    stripe_customer_id     text UNIQUE,
    stripe_subscription_id text,
    subscription_status    text,
    -- The package the subscription's price buys (NULL: a price we do not sell).
    subscription_package   text REFERENCES packages (name),
    current_period_end     timestamptz,
    -- Set when the subscription turns past_due; the package holds until then.
    grace_until            timestamptz,
    -- When the subscription state held here was read from Stripe: a read
    -- that started earlier never overwrites it (webhooks arrive in any order).
    synced_at              timestamptz,
    manual_package         text REFERENCES packages (name),
    -- NULL with a manual_package: until revoked.
    manual_until           timestamptz,
    manual_reason          text,
    updated_at             timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX tenant_billing_subscription_idx ON tenant_billing (stripe_subscription_id)
    WHERE stripe_subscription_id IS NOT NULL;
-- billing_reconcile's sweep: grace periods and manual activations that end.
CREATE INDEX tenant_billing_deadlines_idx ON tenant_billing (tenant_id)
    WHERE grace_until IS NOT NULL OR manual_until IS NOT NULL;

CREATE TABLE stripe_events (
    id          text PRIMARY KEY,
    type        text NOT NULL,
    -- The event's own time (Stripe's `created`).
    created     timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    -- No foreign key: the record outlives a deleted tenant.
    tenant_id   uuid,
    outcome     text NOT NULL
);

CREATE INDEX stripe_events_tenant_idx ON stripe_events (tenant_id, received_at);
