-- eventfold 00002: idempotency records for PostgreSQL (package orchestrator).
--
-- What this creates, inside schema "eventfold":
--   eventfold.commands  one row per dispatched command that carried an id
--                       (Envelope.ID): which events it produced, as a JSON
--                       array of {"s": stream id, "v": stream version}.
--
-- The row is inserted in the same transaction as the command's events, so it
-- exists exactly when the events do. A second dispatch of the same id finds
-- the row and returns those events without running anything. A concurrent
-- duplicate blocks on the primary key until the first commits, then inserts
-- nothing (ON CONFLICT DO NOTHING) and the orchestrator retries, finding the row.
--
-- Rows are never needed by the event log itself: delete old ones (the
-- orchestrator's ForgetCommands, or DELETE ... WHERE recorded_at < ...) once
-- clients can no longer retry those requests.
--
--   goose -dir sql/postgres -table eventfold_goose_version postgres "$DSN" up

-- +goose Up

CREATE TABLE eventfold.commands (
    command_id   text COLLATE "C" NOT NULL,
    -- The command name, for people reading the table.
    command_type text        NOT NULL,
    -- [{"s": "<stream id>", "v": <stream version>}, ...] in emitted order.
    events       jsonb       NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT commands_pkey PRIMARY KEY (command_id),
    CONSTRAINT commands_id_length CHECK (octet_length(command_id) BETWEEN 1 AND 200)
);

-- Pruning deletes by age.
CREATE INDEX commands_recorded_at_idx ON eventfold.commands (recorded_at);

COMMENT ON TABLE eventfold.commands IS 'Idempotency records of dispatched commands (package orchestrator). Old rows may be deleted; their command ids then count as new.';

-- +goose Down

DROP TABLE IF EXISTS eventfold.commands;
