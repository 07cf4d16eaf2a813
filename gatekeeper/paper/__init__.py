"""A paper broker speaking the part of TastyTrade's REST API that bots and the gatekeeper use.

In memory, one event loop, Decimal money. Used by ``gatekeeper paper``, the demo, the tests
and the benchmarks.
"""

from __future__ import annotations

from gatekeeper.paper.app import create_paper_app
from gatekeeper.paper.book import PaperBook
from gatekeeper.paper.control import CONTROL_TOKEN_HEADER
from gatekeeper.paper.http import BOOK
from gatekeeper.paper.seed import SeedError, build_book, load_book, load_seed
from gatekeeper.paper.server import new_control_token, running_paper, serve_paper
from gatekeeper.paper.valuation import Valuation

__all__ = [
    "BOOK",
    "CONTROL_TOKEN_HEADER",
    "PaperBook",
    "SeedError",
    "Valuation",
    "build_book",
    "create_paper_app",
    "load_book",
    "load_seed",
    "new_control_token",
    "running_paper",
    "serve_paper",
]
