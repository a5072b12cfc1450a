"""The one exception base of lucerag: every error lucerag raises on purpose is a ``LuceragError``."""

from __future__ import annotations


class LuceragError(Exception):
    """Base of every error lucerag raises on purpose (bad input, a missing index, a broken encoder)."""
