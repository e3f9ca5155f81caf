-- eventfold 00003: durable subscriptions for SQL Server 2017+ (package listener).
--
--   eventfold.checkpoints  one row per named subscription: the global position
--                          of the last event it has handled.
--   eventfold.leases       one row per named subscription: which process drives
--                          it and until when (renewed by its holder), so that
--                          two service instances never both run it.
--
-- Times are UTC from the database clock (SYSUTCDATETIME()). Names compare
-- byte-wise (Latin1_General_100_BIN2 collation), like stream ids.
-- SQL Server has no LISTEN/NOTIFY: listeners poll (see package listener).
--
--   goose -dir sql/mssql -table eventfold_goose_version mssql "$DSN" up

-- +goose Up

CREATE TABLE eventfold.checkpoints (
    name       NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NOT NULL,
    -- Global position of the last event handled; 0 = none.
    position   BIGINT        NOT NULL,
    updated_at DATETIME2(6)  NOT NULL CONSTRAINT checkpoints_updated_at_default DEFAULT SYSUTCDATETIME(),
    CONSTRAINT checkpoints_pkey PRIMARY KEY (name),
    CONSTRAINT checkpoints_position_nonnegative CHECK (position >= 0)
);

CREATE TABLE eventfold.leases (
    name        NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NOT NULL,
    owner       NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NOT NULL,
    expires_at  DATETIME2(6)  NOT NULL,
    acquired_at DATETIME2(6)  NOT NULL CONSTRAINT leases_acquired_at_default DEFAULT SYSUTCDATETIME(),
    CONSTRAINT leases_pkey PRIMARY KEY (name)
);

-- +goose Down

DROP TABLE IF EXISTS eventfold.leases;
DROP TABLE IF EXISTS eventfold.checkpoints;
