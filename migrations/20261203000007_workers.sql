-- Worker processes register here and heartbeat, so operators can see every
-- live worker, and a killed one shows as lost once its heartbeat is stale.
CREATE TABLE workers (
    id           text PRIMARY KEY,
    host         text NOT NULL,
    pid          integer NOT NULL,
    kinds        jsonb NOT NULL,          -- kind -> concurrency
    in_flight    integer NOT NULL DEFAULT 0,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    stopped_at   timestamptz
);
CREATE INDEX workers_heartbeat_idx ON workers (heartbeat_at);
