"""Deprecated import path, kept for one release: ``lucerag.server`` is ``lucerag.serve.http``."""

import importlib
import sys
import warnings

warnings.warn("lucerag.server moved to lucerag.serve.http; the old path goes in the next release",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("lucerag.serve.http")
