-- Issue 9, item 1: the start of day comes from the broker.
--
-- account_day_start stays append-only (its trigger from 0020 is untouched). A day may now hold
-- two rows per account, one per source:
--   broker_bod   the broker's beginning-of-day balance snapshot for the trading day
--                (GET /accounts/{a}/balance-snapshots?time-of-day=BOD&snapshot-date=DAY),
--                fetched once per account and day with a bot's credentials;
--   first_sight  the NLV the gatekeeper saw at its first decision of the day, recorded only
--                while the broker has no snapshot for the day (404 or no items).
-- When both exist the broker's row wins (the limit is defined on the broker's figure; a
-- first-sight row only stands in for it). Nothing is ever updated or deleted.
--
-- net_deposits_at_start: the day's net deposits (deposits - withdrawals, TastyTrade's
-- Money Movement transactions) already contained in the figure. Always 0 for broker_bod (the
-- snapshot precedes the day's movements); for first_sight, those known when it was taken, so
-- that day P&L = (NLV - (net deposits now - net_deposits_at_start) - start) / start.
--
-- Existing rows were all first sights.

ALTER TABLE account_day_start
    ADD COLUMN source text NOT NULL DEFAULT 'first_sight',
    ADD COLUMN net_deposits_at_start numeric(20, 4) NOT NULL DEFAULT 0,
    ADD CONSTRAINT account_day_start_source_check
        CHECK (source IN ('broker_bod', 'first_sight')),
    ADD CONSTRAINT account_day_start_broker_deposits_check
        CHECK (source = 'first_sight' OR net_deposits_at_start = 0);

-- New rows must say where their figure comes from.
ALTER TABLE account_day_start ALTER COLUMN source DROP DEFAULT;

ALTER TABLE account_day_start
    DROP CONSTRAINT account_day_start_pkey,
    ADD CONSTRAINT account_day_start_pkey PRIMARY KEY (account_id, trading_day, source);
