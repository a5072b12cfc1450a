"""Export time (fresh interpreter, imports included), op counts and parity: numpy builder vs torch route.

    python tests/data/compare_export_routes.py tests/data/minilm_reference.npz 3   # needs lucerag[export]

The numbers in docs/encoder.md ("Building without PyTorch") come from this script.
"""
import collections, json, subprocess, sys, tempfile, time
from pathlib import Path
import numpy as np, onnx

REF = Path(sys.argv[1])
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
out = Path(tempfile.mkdtemp())
times = {"numpy": [], "torch": []}
for r in range(rounds):
    for backend in ("numpy", "torch"):
        code = f"from lucerag.models import export_model; export_model(None, {str(out / backend)!r}, backend={backend!r}, overwrite=True)"
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        times[backend].append(time.perf_counter() - t)
from lucerag.models import OnnxEncoder
z = np.load(REF)
texts = [str(t) for t in z["texts"]]
for backend in ("numpy", "torch"):
    ops = collections.Counter(n.op_type for n in onnx.load(str(out / backend / "model.onnx")).graph.node)
    enc = OnnxEncoder(out / backend, threads=2)
    single = np.stack([enc.encode_query(t) for t in texts])
    padded = enc.encode_passages(texts, batch_size=7)
    print(json.dumps({
        "backend": backend, "export_s": [round(t, 1) for t in times[backend]],
        "median_s": round(float(np.median(times[backend])), 1),
        "nodes": sum(ops.values()), "Attention": ops["Attention"], "EmbedLayerNormalization": ops["EmbedLayerNormalization"],
        "ops": dict(sorted(ops.items())),
        "cos_min_single": round(float((single * z["embeddings"]).sum(1).min()), 7),
        "cos_min_padded": round(float((padded * z["embeddings"]).sum(1).min()), 7),
    }))
a, b = (OnnxEncoder(out / k, threads=2).encode_passages(texts, batch_size=7) for k in ("numpy", "torch"))
print("numpy vs torch export: max abs diff", float(np.abs(a - b).max()), "cos min", float((a * b).sum(1).min()))
