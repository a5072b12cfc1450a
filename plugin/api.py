"""Deprecated import path, kept for one release: ``lucerag.api`` is ``lucerag.rag.api``."""

import importlib
import sys
import warnings

warnings.warn("lucerag.api moved to lucerag.rag.api; the old path goes in the next release",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("lucerag.rag.api")
