"""Which integer-arithmetic kernels this CPU gives onnxruntime, for logs, caches and test output.

onnxruntime's MLAS picks its int8 GEMM kernel by instruction set: AVX2 (no VNNI) multiplies u8 x s8
pairs with ``vpmaddubsw``, which saturates its 16-bit sums; AVX-512 without VNNI does the same on wider
registers; AVX-VNNI / AVX-512 VNNI (``vpdpbusd``) and AMX accumulate in 32 bits and never saturate.
That is why one int8 recipe can be exact on one CPU and lose accuracy on another
(``lucerag.models.quantize`` explains the recipe that avoids it).
"""

from __future__ import annotations

import platform
from functools import lru_cache
from pathlib import Path

# Flags that change MLAS's int8 kernels, strongest last (Linux /proc/cpuinfo names).
_ISA_FLAGS = ("sse4_1", "avx2", "avx512bw", "avx_vnni", "avx512_vnni", "amx_int8")


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags (Linux ``/proc/cpuinfo``); empty where they cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name, or the machine type where /proc/cpuinfo has none."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def int8_isa(flags: frozenset[str] | None = None) -> str:
    """A short name of the int8 kernel family onnxruntime will use on this CPU.

    One of ``"amx"``, ``"avx512-vnni"``, ``"avx-vnni"``, ``"avx512"`` (no VNNI), ``"avx2"`` (no VNNI),
    ``"sse4.1"``, or the machine type (e.g. ``"aarch64"``) on other architectures.
    """
    flags = cpu_flags() if flags is None else flags
    if "amx_int8" in flags:
        return "amx"
    if "avx512_vnni" in flags:
        return "avx512-vnni"
    if "avx_vnni" in flags:
        return "avx-vnni"
    if "avx512bw" in flags:
        return "avx512"
    if "avx2" in flags:
        return "avx2"
    if "sse4_1" in flags:
        return "sse4.1"
    return platform.machine() or "unknown"


def saturating_int8(flags: frozenset[str] | None = None) -> bool:
    """True when this CPU's u8 x s8 kernel adds pairs of products in saturating 16-bit lanes."""
    return int8_isa(flags) in ("avx2", "avx512")


def isa_signature(flags: frozenset[str] | None = None) -> str:
    """The int8-relevant flags, sorted, e.g. ``"avx2 sse4_1"``: part of every cache key of a verdict."""
    flags = cpu_flags() if flags is None else flags
    present = [f for f in _ISA_FLAGS if f in flags]
    return " ".join(present) or platform.machine() or "unknown"
