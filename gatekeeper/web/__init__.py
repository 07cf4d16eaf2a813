"""HTTP edges: the proxy listener (bots) and the admin listener (operators)."""
