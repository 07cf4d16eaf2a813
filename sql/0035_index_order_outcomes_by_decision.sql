-- A decision's newest outcome is looked up on every outcome row (the ledger trigger of
-- sql/0030 reads the decision's previous and latest outcomes), by the retry lookup
-- (first_submission, sql/0033) and by the reconciler: "WHERE decision_id = $1 ORDER BY id
-- DESC LIMIT 1". The only index on decision_id (sql/0029's, on decision_id and whether the
-- outcome is unknown) does not give that order, so the planner could walk the primary key
-- backwards from the newest row, filtering on decision_id: cheap when the decision has a
-- recent outcome, but for a decision's first outcome (every forwarded order) it visited
-- every outcome ever recorded. It chose that plan whenever the table's statistics were
-- missing or stale (a busy morning before autovacuum's next analyze; 2 ms at 5,500 rows,
-- growing with the table). This index answers the lookup in a few pages whatever the
-- statistics say.

CREATE INDEX order_outcomes_by_decision ON order_outcomes (decision_id, id);
