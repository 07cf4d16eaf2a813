"""I/O at the edges: Postgres (pool, queries, migrations), Redis, the broker client."""
