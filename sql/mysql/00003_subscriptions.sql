-- eventfold 00003: durable subscriptions for MySQL 8 / MariaDB 10.6+ (package listener).
--
--   eventfold_checkpoints  one row per named subscription: the global position
--                          of the last event it has handled.
--   eventfold_leases       one row per named subscription: which process drives
--                          it and until when (renewed by its holder), so that
--                          two service instances never both run it.
--
-- All times are UTC from the database clock: NOW(6) in the session time zone,
-- which eventfold sets to +00:00 (sqldriver), so application clocks never matter.
-- MySQL has no LISTEN/NOTIFY: listeners poll (see package listener).
--
--   goose -dir sql/mysql -table eventfold_goose_version mysql "$DSN" up

-- +goose Up

CREATE TABLE eventfold_checkpoints (
    name       VARCHAR(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    position   BIGINT       NOT NULL COMMENT 'global position of the last event handled; 0 = none',
    updated_at DATETIME(6)  NOT NULL COMMENT 'UTC',
    PRIMARY KEY (name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin
  COMMENT = 'Durable subscription checkpoints (package listener); edit only while the subscription is stopped';

CREATE TABLE eventfold_leases (
    name        VARCHAR(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    owner       VARCHAR(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    expires_at  DATETIME(6)  NOT NULL COMMENT 'UTC',
    acquired_at DATETIME(6)  NOT NULL COMMENT 'UTC',
    PRIMARY KEY (name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin
  COMMENT = 'Which process drives each named subscription, until expires_at; delete a row to hand over at once';

-- +goose Down

DROP TABLE IF EXISTS eventfold_leases;
DROP TABLE IF EXISTS eventfold_checkpoints;
