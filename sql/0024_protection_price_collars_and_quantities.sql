-- Issue 9: fat-finger checks per protection, on by default.
--
-- Price collars: a limit price further than this from the quote on the unfavourable side (a
-- buy above the ask, a sell below the bid) is refused (price_collar). Equities and futures by
-- a percentage of the quote; options by the larger of a percentage and a multiple of the
-- bid-ask width (a market order on an option whose spread is wider than the percentage is
-- refused too). Quantity caps: the most one leg of an order may carry, per instrument type
-- (shares, contracts). NULL switches a check off; existing protections get the defaults.

ALTER TABLE portfolio_protections
    ADD COLUMN price_collar_equity_percentage numeric(5,2) DEFAULT 5.00,
    ADD COLUMN price_collar_option_percentage numeric(5,2) DEFAULT 25.00,
    ADD COLUMN price_collar_option_width_multiple numeric(5,2) DEFAULT 2.00,
    ADD COLUMN price_collar_future_percentage numeric(5,2) DEFAULT 2.00,
    ADD COLUMN max_order_quantity_equity integer DEFAULT 50000,
    ADD COLUMN max_order_quantity_equity_option integer DEFAULT 1000,
    ADD COLUMN max_order_quantity_future integer DEFAULT 100,
    ADD COLUMN max_order_quantity_future_option integer DEFAULT 500,
    ADD CONSTRAINT price_collar_equity_range_check
        CHECK (price_collar_equity_percentage > 0 AND price_collar_equity_percentage <= 50),
    ADD CONSTRAINT price_collar_option_range_check
        CHECK (price_collar_option_percentage > 0 AND price_collar_option_percentage <= 500),
    ADD CONSTRAINT price_collar_option_width_range_check
        CHECK (price_collar_option_width_multiple > 0 AND price_collar_option_width_multiple <= 50),
    ADD CONSTRAINT price_collar_future_range_check
        CHECK (price_collar_future_percentage > 0 AND price_collar_future_percentage <= 20),
    ADD CONSTRAINT max_order_quantity_equity_range_check
        CHECK (max_order_quantity_equity >= 1 AND max_order_quantity_equity <= 1000000),
    ADD CONSTRAINT max_order_quantity_equity_option_range_check
        CHECK (max_order_quantity_equity_option >= 1 AND max_order_quantity_equity_option <= 100000),
    ADD CONSTRAINT max_order_quantity_future_range_check
        CHECK (max_order_quantity_future >= 1 AND max_order_quantity_future <= 10000),
    ADD CONSTRAINT max_order_quantity_future_option_range_check
        CHECK (max_order_quantity_future_option >= 1 AND max_order_quantity_future_option <= 10000);
