"""Where exported models live."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"


def cache_dir() -> Path:
    """``$LUCERAG_CACHE`` or ``~/.cache/lucerag``."""
    env = os.environ.get("LUCERAG_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "lucerag"


def default_model_dir() -> Path:
    """The exported default model: ``<cache>/models/all-MiniLM-L6-v2``."""
    return cache_dir() / "models" / DEFAULT_MODEL_NAME
