"""Gatekeeper: a pre-trade risk gatekeeper for TastyTrade."""

from __future__ import annotations

__version__ = "0.1.0"
