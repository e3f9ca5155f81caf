-- eventfold 00003: durable subscriptions for PostgreSQL (package listener).
--
-- What this creates, inside schema "eventfold":
--   eventfold.checkpoints    one row per named subscription: the global
--                            position of the last event it has handled.
--   eventfold.leases         one row per named subscription: which process
--                            drives it and until when (a lease with expiry,
--                            renewed by its holder), so that two service
--                            instances never both run one subscription.
--   eventfold.notify_events  an optional trigger function that wakes
--                            listeners on appends made directly from SQL.
--
-- Leases are rows rather than advisory locks because they must work the same
-- on every dialect and through PgBouncer in transaction mode (where a
-- session-level advisory lock would be held by whichever client the pooler
-- hands the server connection to next). Times come from the database clock
-- (clock_timestamp()), so clock skew between application hosts does not matter.
--
-- Apply with goose (the library does this in Store.Migrate):
--   goose -dir sql/postgres -table eventfold_goose_version postgres "$DSN" up

-- +goose Up

CREATE TABLE eventfold.checkpoints (
    name       text COLLATE "C" NOT NULL,
    -- Global position of the last event handled (or skipped by the
    -- subscription's filter); 0 = nothing yet. Positions are sparse on
    -- PostgreSQL ((xid << 20) + index), so "position - head" is a distance
    -- in position space, not a count of events.
    position   bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT checkpoints_pkey PRIMARY KEY (name),
    CONSTRAINT checkpoints_name_length CHECK (octet_length(name) BETWEEN 1 AND 200),
    CONSTRAINT checkpoints_position_nonnegative CHECK (position >= 0)
);

COMMENT ON TABLE eventfold.checkpoints IS 'Durable subscription checkpoints (package listener). Safe to edit by hand to rewind or skip a subscription while it is stopped.';

CREATE TABLE eventfold.leases (
    name        text COLLATE "C" NOT NULL,
    -- Free-form identity of the holder (host, pid, random suffix).
    owner       text        NOT NULL,
    expires_at  timestamptz NOT NULL,
    acquired_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT leases_pkey PRIMARY KEY (name),
    CONSTRAINT leases_name_length CHECK (octet_length(name) BETWEEN 1 AND 200)
);

COMMENT ON TABLE eventfold.leases IS 'Which process drives each named subscription, until expires_at (renewed by the holder). Deleting a row lets another instance take over at once.';

-- notify_events sends one empty notification on channel eventfold_events.
-- It is NOT attached by this migration: appends made through the Go library
-- are announced after commit by listener.Notifier, outside the write
-- transaction, because NOTIFY takes a database-wide lock at commit and halves
-- write throughput when sent inside every transaction. Attach it only if
-- events are also appended directly from SQL and listeners must wake at once:
--   CREATE TRIGGER events_notify AFTER INSERT ON eventfold.events
--       FOR EACH STATEMENT EXECUTE FUNCTION eventfold.notify_events();
-- PostgreSQL folds identical notifications of one transaction into one, so
-- the empty payload means at most one notification per transaction.
-- +goose StatementBegin
CREATE FUNCTION eventfold.notify_events() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('eventfold_events', '');
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- +goose Down

DROP TRIGGER IF EXISTS events_notify ON eventfold.events;
DROP FUNCTION IF EXISTS eventfold.notify_events();
DROP TABLE IF EXISTS eventfold.leases;
DROP TABLE IF EXISTS eventfold.checkpoints;
