"""Same int8 vectors on another instruction set: encode the probe texts natively and under qemu.

``lucerag bench isa`` runs this module twice: on this CPU, and under Debian's ``qemu-user`` emulating an
older x86-64 CPU (default ``Nehalem``: SSE4.2, no AVX), where onnxruntime picks other int8 GEMM kernels.
It prints the minimum cosine between the two sets of vectors for fp32 and for int8. qemu emulates no
AVX-512, VNNI or AMX; those kernels accumulate in 32 bits and cannot saturate, so the AVX2 vs SSE
comparison covers the kernels that can (docs/encoder.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def encode_probe(model_dir: Path, n: int, out: Path) -> None:
    from lucerag.models.encoder import OnnxEncoder
    from lucerag.models.probe import PROBE_TEXTS

    enc = OnnxEncoder(model_dir, threads=1)
    np.save(out, np.stack([enc.encode_query(t) for t in PROBE_TEXTS[:n]]))


def _run(model_dir: Path, n: int, out: Path, qemu_cpu: str | None) -> float:
    cmd = [sys.executable, "-m", "lucerag.bench.isa", "--encode", str(model_dir), "--texts", str(n),
           "--out", str(out)]
    if qemu_cpu:
        qemu = shutil.which("qemu-x86_64")
        if qemu is None:
            raise FileNotFoundError("qemu-x86_64 not found: apt-get install qemu-user")
        cmd = [qemu, "-cpu", qemu_cpu] + cmd
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, timeout=3600)
    return time.perf_counter() - t0


def compare(model_dirs: dict[str, Path], n: int = 8, qemu_cpu: str = "Nehalem") -> dict:
    """{label: min cosine native vs emulated} for each model folder, plus the CPUs and timings."""
    from lucerag.models.cpu import cpu_model, int8_isa

    result: dict = {"native": f"{cpu_model()} ({int8_isa()})", "emulated": f"qemu-x86_64 -cpu {qemu_cpu}",
                    "texts": n}
    with tempfile.TemporaryDirectory() as tmp:
        for label, model_dir in model_dirs.items():
            a, b = Path(tmp) / f"{label}-native.npy", Path(tmp) / f"{label}-qemu.npy"
            _run(model_dir, n, a, None)
            result[f"{label}_emulated_s"] = round(_run(model_dir, n, b, qemu_cpu), 1)
            va, vb = np.load(a), np.load(b)
            result[f"{label}_min_cosine"] = round(float((va * vb).sum(1).min()), 7)
            result[f"{label}_max_abs_diff"] = float(np.abs(va - vb).max())
    return result


def main(argv: list[str] | None = None) -> dict | None:
    ap = argparse.ArgumentParser(prog="lucerag bench isa", description=__doc__)
    ap.add_argument("--encode", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--texts", type=int, default=8, help="probe texts to encode (emulation is slow)")
    ap.add_argument("--qemu-cpu", default="Nehalem", help="CPU model qemu emulates")
    ap.add_argument("--model", action="append", default=[],
                    help="LABEL=DIR of an exported model folder (default: the default model, fp32 and int8)")
    a = ap.parse_args(argv)
    if a.encode:
        encode_probe(a.encode, a.texts, a.out)
        return None
    if a.model:
        dirs = {m.split("=", 1)[0]: Path(m.split("=", 1)[1]) for m in a.model}
    else:
        from lucerag.models.store import ensure_default_model, int8_variant

        fp32 = ensure_default_model()
        dirs = {"fp32": fp32, "int8": int8_variant(fp32)}
    result = compare(dirs, a.texts, a.qemu_cpu)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
