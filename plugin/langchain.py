"""Deprecated import path, kept for one release: ``lucerag.langchain`` is ``lucerag.adapters.langchain``."""

import importlib
import sys
import warnings

warnings.warn("lucerag.langchain moved to lucerag.adapters.langchain; the old path goes in the next release",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("lucerag.adapters.langchain")
