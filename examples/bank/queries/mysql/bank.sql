-- Read-model queries of the bank example (MySQL / MariaDB); sqlc generates
-- internal/bankdb/mysqlbank from them.

-- name: InsertAccount :exec
INSERT INTO bank_accounts (account_id, owner, number, balance, version)
VALUES (?, ?, ?, 0, ?);

-- name: GetAccount :one
SELECT account_id, owner, number, balance, version FROM bank_accounts WHERE account_id = ?;

-- name: ApplyMovement :execrows
UPDATE bank_accounts SET balance = balance + sqlc.arg(delta), version = sqlc.arg(version) WHERE account_id = sqlc.arg(account_id);

-- name: InsertLedgerEntry :exec
INSERT INTO bank_ledger (account_id, version, global_position, kind, amount, counterparty)
VALUES (?, ?, ?, ?, ?, ?);

-- name: ListAccounts :many
SELECT account_id, owner, number, balance, version FROM bank_accounts ORDER BY account_id;

-- name: ListLedger :many
SELECT account_id, version, global_position, kind, amount, counterparty FROM bank_ledger
WHERE account_id = ? ORDER BY version;
