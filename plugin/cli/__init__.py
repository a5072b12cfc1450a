"""The ``lucerag`` command line, one module per command group.

``app`` is the typer application; importing this package registers every command on it.
"""

from __future__ import annotations

# Importing the command modules registers their commands on ``app``, in this order in ``--help``.
from lucerag.cli import index, search, eval, demo, serve, models, bench  # noqa: F401, I001
from lucerag.cli.app import app, main

__all__ = ["app", "main"]
