"""Deprecated import path, kept for one release: ``lucerag.llamaindex`` is ``lucerag.adapters.llamaindex``."""

import importlib
import sys
import warnings

warnings.warn("lucerag.llamaindex moved to lucerag.adapters.llamaindex; the old path goes in the next release",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("lucerag.adapters.llamaindex")
