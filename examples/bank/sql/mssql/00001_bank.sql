-- bank example 00001: the read models of the bank ledger example (SQL Server).
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
--   goose -dir examples/bank/sql/mssql -table bank_goose_version mssql "$DSN" up

-- +goose Up

CREATE TABLE bank_accounts (
    account_id NVARCHAR(200) NOT NULL,
    owner      NVARCHAR(200) NOT NULL,
    number     NVARCHAR(200) NOT NULL,
    -- In cents. The CHECK is a backstop: handlers refuse overdrafts first.
    balance    BIGINT NOT NULL CONSTRAINT bank_accounts_balance_default DEFAULT 0,
    -- Version of stream "account-<account_id>" this row reflects; handlers
    -- append with this as the expected version.
    version    BIGINT NOT NULL,
    CONSTRAINT bank_accounts_pkey PRIMARY KEY (account_id),
    CONSTRAINT bank_accounts_number_key UNIQUE (number),
    CONSTRAINT bank_accounts_balance_nonnegative CHECK (balance >= 0)
);

CREATE TABLE bank_ledger (
    account_id      NVARCHAR(200) NOT NULL,
    version         BIGINT NOT NULL,
    global_position BIGINT NOT NULL,
    kind            NVARCHAR(200) NOT NULL,
    -- Signed, in cents: deposits and incoming transfers are positive.
    amount          BIGINT NOT NULL,
    counterparty    NVARCHAR(200) NULL,
    CONSTRAINT bank_ledger_pkey PRIMARY KEY (account_id, version)
);

-- +goose Down

DROP TABLE IF EXISTS bank_ledger;
DROP TABLE IF EXISTS bank_accounts;
