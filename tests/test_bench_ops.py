"""The kernel micro-benchmark: every way of writing a block computes the same thing, and is timed."""

import numpy as np

from lucerag.bench.ops import _session, _variants, run_kernels


def test_variants_compute_the_same_and_are_timed():
    outputs: dict[str, list[np.ndarray]] = {}
    for name, (nodes, inputs, weights) in _variants(hidden=16, ffn=32).items():
        used = {i for node in nodes for i in node.input}
        session = _session(nodes, {k: [2, 5, d] for k, d in inputs.items()},
                           {k: v for k, v in weights.items() if k in used}, threads=1)
        feeds = {k: np.random.default_rng(len(k) + d).normal(size=(2, 5, d)).astype(np.float32) for k, d in inputs.items()}
        if "folded" in name:  # this variant's bias is added by the MatMul before it
            feeds["u"] = feeds["u"] + weights["fbias"]
        outputs.setdefault("ln" if "x" in inputs else "gelu", []).append(session.run(None, feeds)[0])
    assert len(outputs["ln"]) == 3 and len(outputs["gelu"]) == 3
    for block in outputs.values():
        for other in block[1:]:
            assert np.abs(other - block[0]).max() < 1e-4
    r = run_kernels(batch=2, seq=5, hidden=16, ffn=32, threads=1, calls=3, rounds=2)
    assert len(r["ms_per_call"]) == 6 and all(ms > 0 for ms in r["ms_per_call"].values())


def test_encoder_bench_says_when_it_falls_back_to_the_demo_sentences(tmp_path, monkeypatch, capsys):
    """Without the shared data the encoder bench times the demo corpus's sentences (longer than MS
    MARCO queries): it says so on stderr, not only in its JSON."""
    from lucerag.bench.encoder import load_texts

    monkeypatch.setenv("LUCERAG_DATA", str(tmp_path))
    queries, passages, source = load_texts()
    assert queries and passages and source == "lucerag/data/demo/*.md"
    assert "no MS MARCO DL19 slice" in capsys.readouterr().err
