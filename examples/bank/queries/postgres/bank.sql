-- Read-model queries of the bank example (PostgreSQL); sqlc generates
-- internal/bankdb/pgbank from them.

-- name: InsertAccount :exec
INSERT INTO bank_accounts (account_id, owner, number, balance, version)
VALUES (@account_id, @owner, @number, 0, @version);

-- name: GetAccount :one
SELECT account_id, owner, number, balance, version FROM bank_accounts WHERE account_id = @account_id;

-- name: ApplyMovement :execrows
UPDATE bank_accounts SET balance = balance + @delta, version = @version WHERE account_id = @account_id;

-- name: InsertLedgerEntry :exec
INSERT INTO bank_ledger (account_id, version, global_position, kind, amount, counterparty)
VALUES (@account_id, @version, @global_position, @kind, @amount, @counterparty);

-- name: ListAccounts :many
SELECT account_id, owner, number, balance, version FROM bank_accounts ORDER BY account_id;

-- name: ListLedger :many
SELECT account_id, version, global_position, kind, amount, counterparty FROM bank_ledger
WHERE account_id = @account_id ORDER BY version;
