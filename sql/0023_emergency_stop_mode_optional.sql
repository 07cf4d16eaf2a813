-- Issue 7, item 4: an automatic (daily-loss) stop uses reduce_only unless the protection says
-- halt explicitly, so a breached account can still be flattened.
--
-- Two columns, two meanings:
--   emergency_stop_mode         the protection's setting, as the owner chose it: 'halt',
--                               'reduce_only', or NULL = not set explicitly. Triggering or
--                               clearing a stop never writes it.
--   emergency_stop_active_mode  the effective mode of the active stop, fixed when the stop is
--                               triggered (and recorded in emergency_events.mode); NULL exactly
--                               when no stop is active. The order path reads this one.
-- When a stop is triggered: the mode the request names, else the setting, else reduce_only for
-- an automatic (system) stop and halt for a manual one (API, CLI). Clearing sets
-- emergency_stop_active_mode back to NULL and leaves the setting as it was, so an automatic
-- reduce_only never looks like an owner's choice afterwards.
--
-- Existing rows keep their emergency_stop_mode ('halt' unless someone chose reduce_only): a
-- stored 'halt' cannot be told apart from an explicit choice (the old column default filled
-- it), and keeping it is the conservative reading: nothing that halted before now lets orders
-- through. Owners who want the new automatic behaviour set the mode to null (PATCH
-- {"emergency_stop_mode": null}, or `gatekeeper protections set ACCOUNT --stop-mode unset`).
-- A stop active during the upgrade keeps the mode it had.
--
-- emergency_stop_mode_check (mode IN ('halt', 'reduce_only')) stays: a CHECK lets NULL pass.

ALTER TABLE portfolio_protections
    ALTER COLUMN emergency_stop_mode DROP NOT NULL,
    ALTER COLUMN emergency_stop_mode DROP DEFAULT,
    ADD COLUMN emergency_stop_active_mode text;

UPDATE portfolio_protections
SET emergency_stop_active_mode = emergency_stop_mode
WHERE emergency_stop_triggered_at IS NOT NULL;

ALTER TABLE portfolio_protections
    ADD CONSTRAINT emergency_stop_active_mode_check
        CHECK (emergency_stop_active_mode IN ('halt', 'reduce_only')),
    -- IS NULL on both sides: the comparison is never NULL, so the CHECK cannot pass by default.
    ADD CONSTRAINT emergency_stop_active_mode_state_check
        CHECK ((emergency_stop_active_mode IS NULL) = (emergency_stop_triggered_at IS NULL));
