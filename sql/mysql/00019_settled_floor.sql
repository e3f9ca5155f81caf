-- eventfold 00019: what a reader proves settled is kept in the database, for MySQL 8.0.19+ and
-- MariaDB 10.6+.
--
-- Since 00015 a reader that finds a position missing below a committed one takes the gate (the
-- eventfold_position row, id 1) FOR UPDATE: once granted, every append that took a position
-- before it has ended, so every position up to the highest committed one is settled, and a
-- missing one is dead. Each pool kept that watermark in its process only: a new process (a
-- restarted service, esctl, a new subscriber) knew nothing settled, and while one append ran
-- longer than the gate's 1 s wait, its Head stopped at the first dead position anywhere in
-- history (Head 1 where a long-lived pool said 12), so a subscription started at Head delivered
-- the history again.
--
-- Now the watermark is kept in eventfold_position.last_position, the position floor of 00018:
--   * A pool takes the gate with
--       UPDATE eventfold_position SET last_position = GREATEST(last_position, <p>) WHERE id = 1
--     (p: the highest committed position, read before) instead of SELECT ... FOR UPDATE: the
--     same row, the same lock, one statement; it writes (and its commit flushes the log) only
--     when the floor moves. Appends are untouched: nothing is added per append.
--   * Readers read the floor in the statement that reads the highest position (a plain read,
--     no lock) and pass a missing position at or below it without the gate.
--   * When the server refuses the UPDATE (an account without UPDATE on eventfold_position, a
--     read-only server or transaction) the reader takes the gate with the plain locking read
--     and keeps its watermark in its process, as before.
-- The floor, not a mark of its own, because the append procedures (00018) refuse a position at
-- or below it: whatever happens to AUTO_INCREMENT later (a TRUNCATE, an ALTER TABLE, a dump
-- into another database), nothing can commit at or below it, while appends would commit below
-- a mark they do not check, and a reader trusting that mark would skip them. Raised by readers
-- it never passes the highest committed event, so a dump that carries every event never puts
-- AUTO_INCREMENT at or below it. A DBA who lowers it only costs lag (readers prove less
-- without the gate); one who raises it makes appends refuse (31004) until the repair
-- (esctl doctor --repair, Store.CheckPositions, Store.Append by itself) raises AUTO_INCREMENT
-- above it. A dump must carry eventfold_position with the other tables (00018).
--
-- Up raises the floor once the same way: it takes the gate FOR UPDATE (it waits for appends in
-- flight, at most innodb_lock_wait_timeout, and holds new ones back until the migration
-- commits) and raises the floor to the highest event. No table, column or procedure changes.
-- Down leaves the floor where it is: every position up to it was handed out, and 00018's
-- appends refuse below it as they should.
--
-- Apply with the stock goose CLI:
--   goose -dir sql/mysql -table eventfold_goose_version mysql "user:pass@tcp(host:3306)/db?parseTime=true" up

-- +goose Up
SELECT id FROM eventfold_position WHERE id = 1 FOR UPDATE;

UPDATE eventfold_position
SET last_position = GREATEST(last_position,
    (SELECT COALESCE(MAX(global_position), 0) FROM eventfold_events))
WHERE id = 1;

-- +goose Down
-- Nothing to undo: the floor stays (see the header).
