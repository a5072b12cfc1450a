"""Files shipped inside the package (``lucerag/data``), found beside this module in a wheel or a checkout.

The product reads no file relative to the repository (``tests/``, ``docs/``, ``../shared``): what
it needs by default ships here, and evaluation data is always a path the caller gives.
"""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
DEMO_CORPUS = DATA / "demo"                   # a few Markdown pages about lucerag: `lucerag demo`
DEMO_QUERIES = DATA / "demo-queries.txt"      # questions about them, one a line: the load test's default
BRIDGE_JAR = DATA / "lucerag-bridge.jar"      # lucerag.Bridge (plugin/java), built by `make bridge`
DEFAULT_CALIBRATOR = DATA / "lucerag-calibrator.json"
# questions no ordinary corpus answers (the same list as tests/data/ood_train.txt): the shipped
# mixture calibrator searches them on the user's own index to set its answerability gate there
UNANSWERABLE = DATA / "unanswerable-questions.txt"
