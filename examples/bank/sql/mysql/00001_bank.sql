-- bank example 00001: the read models of the bank ledger example (MySQL 8 / MariaDB).
--
-- These tables are NOT the source of truth: the event log is. Reducers of
-- package examples/bank keep them up to date inside each dispatch transaction,
-- so they are always consistent with the log and handlers can validate
-- commands against them ("insufficient funds").
--
--   bank_accounts  one row per account: owner, number, balance, and the
--                  account stream's version the row reflects.
--   bank_ledger    one row per money movement (the account statement).
--
-- The UNIQUE account number is a rule that spans streams: only the database
-- can enforce it race-free. A reducer that violates it fails the dispatch and
-- rolls back the event too.
--
--   goose -dir examples/bank/sql/mysql -table bank_goose_version mysql "$DSN" up

-- +goose Up

CREATE TABLE bank_accounts (
    account_id VARCHAR(200) NOT NULL,
    owner      VARCHAR(200) NOT NULL,
    number     VARCHAR(200) NOT NULL,
    -- In cents. The CHECK is a backstop: handlers refuse overdrafts first.
    balance    BIGINT NOT NULL DEFAULT 0,
    -- Version of stream "account-<account_id>" this row reflects; handlers
    -- append with this as the expected version.
    version    BIGINT NOT NULL,
    PRIMARY KEY (account_id),
    CONSTRAINT bank_accounts_number_key UNIQUE (number),
    CONSTRAINT bank_accounts_balance_nonnegative CHECK (balance >= 0)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE bank_ledger (
    account_id      VARCHAR(200) NOT NULL,
    version         BIGINT NOT NULL,
    global_position BIGINT NOT NULL,
    kind            VARCHAR(200) NOT NULL,
    -- Signed, in cents: deposits and incoming transfers are positive.
    amount          BIGINT NOT NULL,
    counterparty    VARCHAR(200) NULL,
    PRIMARY KEY (account_id, version)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- +goose Down

DROP TABLE IF EXISTS bank_ledger;
DROP TABLE IF EXISTS bank_accounts;
