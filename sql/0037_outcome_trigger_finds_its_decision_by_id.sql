-- The ledger trigger on order_outcomes (sql/0030) found the decision of each outcome with
-- "WHERE decision_id = $1 AND verdict = 'allow' AND trade_count > 0". Those two conditions
-- are exactly the predicate of the reservations' partial index (sql/0022), and a session
-- that planned the statement generically while the table was empty (a gatekeeper's pooled
-- connection on its first orders after a deployment) kept a plan that scanned that whole
-- index, filtering on decision_id: every reservation ever recorded, on every outcome row.
-- The benchmark saw it grow from 0.30 to 0.96 ms per outcome over three rounds, until
-- statistics made the session plan again. The lookup now goes by decision_id alone, which
-- only the unique index answers, and the reservation test follows it in the function.

CREATE OR REPLACE FUNCTION order_ledger_outcome() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    d record;
    previous text;
    latest order_outcomes;
    was_counted boolean;
    counted boolean;
BEGIN
    -- By decision_id alone (its unique index), the reservation test after: with the test in
    -- the query, a plan made on an empty table scanned the reservations' partial index.
    SELECT r.account_id, r.trading_day, r.trade_count, r.id, r.reserved_orders, r.verdict
    INTO d
    FROM risk_decisions r
    WHERE r.decision_id = NEW.decision_id;
    IF NOT FOUND OR d.verdict <> 'allow' OR d.trade_count <= 0 THEN
        RETURN NULL;  -- not a reservation
    END IF;
    SELECT o.outcome INTO previous FROM order_outcomes o
    WHERE o.decision_id = NEW.decision_id AND o.id <> NEW.id ORDER BY o.id DESC LIMIT 1;
    SELECT * INTO latest FROM order_outcomes o
    WHERE o.decision_id = NEW.decision_id ORDER BY o.id DESC LIMIT 1;
    was_counted := previous IS NULL OR previous IN ('accepted', 'unknown');
    counted := latest.outcome IN ('accepted', 'unknown');
    IF counted <> was_counted THEN
        INSERT INTO account_day_trades AS t (account_id, trading_day, trades)
        VALUES (d.account_id, d.trading_day,
                CASE WHEN counted THEN d.trade_count ELSE -d.trade_count END)
        ON CONFLICT (account_id, trading_day) DO UPDATE SET trades = t.trades + excluded.trades;
    END IF;
    IF NOT counted THEN
        DELETE FROM orders_in_flight WHERE decision_id = NEW.decision_id;
    ELSIF latest.id = NEW.id THEN
        -- (re)inserted: a late `unknown` after a resolution counts again, as the scan did
        INSERT INTO orders_in_flight AS f
            (decision_id, account_id, trading_day, decision_row_id, reserved_orders, outcome,
             broker_order_id, settled, since)
        VALUES (NEW.decision_id, d.account_id, d.trading_day, d.id, d.reserved_orders,
                latest.outcome, latest.broker_order_id,
                latest.outcome = 'accepted'
                    AND (latest.resolution IS NULL OR previous IS NOT NULL),
                latest.recorded_at)
        ON CONFLICT (decision_id) DO UPDATE
            SET outcome = excluded.outcome, broker_order_id = excluded.broker_order_id,
                settled = excluded.settled, since = excluded.since;
    END IF;
    RETURN NULL;
END;
$$;
