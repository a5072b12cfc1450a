"""The int8 self-check: before an int8 encoder is used on a CPU, compare it with fp32 once.

The first time a model + int8 recipe is loaded on a CPU (its int8-relevant flags and onnxruntime's
version), both encoders embed the 64 fixed texts of :mod:`lucerag.models.probe` one at a time and the
minimum cosine between their vectors is compared with :data:`MIN_COSINE`. The verdict is cached as a
small JSON file under ``<cache>/selfcheck/`` so later loads cost nothing. A failed check makes
:func:`lucerag.models.load_encoder` use fp32 instead, with one warning line naming the CPU's int8
kernel family and the measured cosine: int8 never degrades silently.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .cpu import cpu_model, int8_isa, isa_signature
from .manifest import ModelManifest
from .paths import cache_dir
from .probe import PROBE_TEXTS

log = logging.getLogger("lucerag.models")

# The bound the int8 copy must meet against fp32 on every probe text (docs/encoder.md).
MIN_COSINE = 0.99


@dataclass(frozen=True)
class Verdict:
    """The outcome of one self-check. ``cosine_min``/``cosine_mean`` over the probe texts."""

    passed: bool
    cosine_min: float
    cosine_mean: float
    bound: float
    isa: str
    cpu: str
    onnxruntime: str
    recipe: int
    texts: int

    def line(self) -> str:
        """One human-readable line."""
        state = "passed" if self.passed else "FAILED"
        return (f"int8 self-check {state} on {self.cpu} ({self.isa} int8 kernels): min cosine to fp32 "
                f"{self.cosine_min:.4f} over {self.texts} probe texts (bound {self.bound})")


def _key(fp32: ModelManifest, int8: ModelManifest, bound: float) -> str:
    import onnxruntime as ort

    parts = [fp32.weights_sha256, str(int8.recipe), fp32.query_prefix, ort.__version__, isa_signature(), str(bound)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def measure(fp32_encoder, int8_encoder, texts=PROBE_TEXTS) -> tuple[float, float]:
    """(min, mean) cosine between the two encoders' query vectors of ``texts`` (each text alone)."""
    a = np.stack([fp32_encoder.encode_query(t) for t in texts])
    b = np.stack([int8_encoder.encode_query(t) for t in texts])
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return float(cos.min()), float(cos.mean())


def check(fp32_dir: Path, int8_dir: Path, *, bound: float | None = None, use_cache: bool = True) -> Verdict:
    """The verdict for ``int8_dir`` against ``fp32_dir`` on this CPU, cached under ``<cache>/selfcheck``.

    ``bound``: the minimum cosine to pass (default :data:`MIN_COSINE`). Costs ~1 s when not cached.
    Raises whatever loading either model raises (FileNotFoundError for a folder that is not a model).
    """
    import onnxruntime as ort

    from .encoder import OnnxEncoder

    bound = MIN_COSINE if bound is None else bound
    fp32_m, int8_m = ModelManifest.load(fp32_dir), ModelManifest.load(int8_dir)
    path = cache_dir() / "selfcheck" / f"{fp32_m.name}-{_key(fp32_m, int8_m, bound)}.json"
    if use_cache and path.is_file():
        try:
            return Verdict(**json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, TypeError):
            pass  # unreadable: measure again
    cos_min, cos_mean = measure(OnnxEncoder(fp32_dir, threads=1), OnnxEncoder(int8_dir, threads=1))
    verdict = Verdict(passed=cos_min >= bound, cosine_min=round(cos_min, 6), cosine_mean=round(cos_mean, 6),
                      bound=bound, isa=int8_isa(), cpu=cpu_model(), onnxruntime=ort.__version__,
                      recipe=int8_m.recipe, texts=len(PROBE_TEXTS))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".verdict-")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(asdict(verdict), f)
        os.replace(tmp, path)
    except OSError as exc:  # a read-only cache only costs a re-check next time
        log.debug("could not cache the int8 self-check verdict: %s", exc)
    return verdict


def cached_verdicts() -> list[Verdict]:
    """Every verdict cached on this machine (for ``lucerag info``)."""
    out = []
    for path in sorted((cache_dir() / "selfcheck").glob("*.json")):
        try:
            out.append(Verdict(**json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError, TypeError):
            continue
    return out
