-- The seed's portfolio_protections table: its columns, defaults (the seed's Step 7 values),
-- indexes and its four named CHECK constraints with its ranges exactly.
-- The same ranges are defined once in Python (gatekeeper/limits.py); a test proves they match.
-- Several protections on one account (one per owner) all apply.

CREATE TABLE portfolio_protections (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id),
    account_id text NOT NULL,
    cash_reserve_percentage numeric(5, 2) NOT NULL DEFAULT 25.0,
    max_daily_loss_percentage numeric(5, 2) NOT NULL DEFAULT 5.0,
    max_single_trade_percentage numeric(5, 2) NOT NULL DEFAULT 10.0,
    max_portfolio_exposure_percentage numeric(5, 2) NOT NULL DEFAULT 75.0,
    max_position_concentration_percentage numeric(5, 2) NOT NULL DEFAULT 20.0,
    max_daily_trades integer NOT NULL DEFAULT 50,
    email_alerts_enabled boolean NOT NULL DEFAULT true,
    active boolean NOT NULL DEFAULT true,
    -- The mode a stop on this protection applies: halt (nothing opens or closes) or
    -- reduce_only (verified closing orders pass).
    emergency_stop_mode text NOT NULL DEFAULT 'halt',
    emergency_stop_triggered_at timestamptz,
    emergency_stop_triggered_by text,
    emergency_stop_reason text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT account_id_format_check CHECK (account_id ~ '^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$'),
    CONSTRAINT emergency_stop_mode_check CHECK (emergency_stop_mode IN ('halt', 'reduce_only')),
    CONSTRAINT emergency_stop_state_check CHECK (
        (emergency_stop_triggered_at IS NULL
            AND emergency_stop_triggered_by IS NULL
            AND emergency_stop_reason IS NULL)
        OR (emergency_stop_triggered_at IS NOT NULL
            AND emergency_stop_triggered_by IS NOT NULL
            AND emergency_stop_reason IS NOT NULL)
    )
);

CREATE UNIQUE INDEX index_portfolio_protections_on_user_id_and_account_id
    ON portfolio_protections (user_id, account_id);
CREATE INDEX index_portfolio_protections_on_account_id
    ON portfolio_protections (account_id);
CREATE INDEX index_portfolio_protections_on_active
    ON portfolio_protections (active);
CREATE INDEX index_portfolio_protections_on_emergency_stop_triggered_at
    ON portfolio_protections (emergency_stop_triggered_at);

ALTER TABLE portfolio_protections ADD CONSTRAINT cash_reserve_range_check
    CHECK (cash_reserve_percentage >= 20.0 AND cash_reserve_percentage <= 50.0);
ALTER TABLE portfolio_protections ADD CONSTRAINT daily_loss_range_check
    CHECK (max_daily_loss_percentage > 0 AND max_daily_loss_percentage <= 15.0);
ALTER TABLE portfolio_protections ADD CONSTRAINT single_trade_range_check
    CHECK (max_single_trade_percentage > 0 AND max_single_trade_percentage <= 20.0);
ALTER TABLE portfolio_protections ADD CONSTRAINT exposure_range_check
    CHECK (max_portfolio_exposure_percentage >= 50.0 AND max_portfolio_exposure_percentage <= 85.0);
ALTER TABLE portfolio_protections ADD CONSTRAINT concentration_range_check
    CHECK (max_position_concentration_percentage > 0 AND max_position_concentration_percentage <= 100.0);
ALTER TABLE portfolio_protections ADD CONSTRAINT daily_trades_range_check
    CHECK (max_daily_trades >= 1 AND max_daily_trades <= 10000);
