"""The operator console: server-rendered pages on the admin listener (``/console/``).

Everything it needs ships in this package (templates/, static/): no build step, no CDN.
See gatekeeper.console.routes for the pages and gatekeeper.console.sessions for how a login
is kept.
"""

from __future__ import annotations

from gatekeeper.console.routes import add_console

__all__ = ["add_console"]
