"""The layering of the package: each subpackage imports only the subpackages below it in the data flow.

    cli -> adapters / serve / bench -> rag / eval -> search / ingest -> index -> config / lucene
        -> connectors / models -> errors / passage / progress / resources

Read from the source with ``ast`` (every import, also those inside functions); nothing is imported.
``lucerag.bench`` is never imported by product code (only by the CLI, which runs benchmarks).
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {"lucerag": ROOT / "plugin", "lucerag.connectors": ROOT / "connectors", "lucerag.models": ROOT / "models"}

LAYERS = [
    {"errors", "passage", "progress", "resources"},
    {"connectors", "models"},
    {"config", "lucene"},
    {"index"},
    {"search", "ingest"},
    {"rag", "eval"},
    {"adapters", "serve", "bench"},
    {"cli"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}
FACE = len(LAYERS)  # lucerag/__init__, __main__ and the one-release shims (api, server, ...) sit on top


def _modules():
    for package, folder in SOURCES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join([package, *parts]), path


def _unit(module: str) -> str | None:
    """The subpackage (or bottom module) a ``lucerag.*`` module belongs to; None for the public face."""
    parts = module.split(".")
    if parts[0] != "lucerag":
        return None
    if len(parts) == 1:
        return None
    return parts[1] if parts[1] in RANK else None


def _imports(module: str, path: Path):
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield node.lineno, target
            for alias in node.names:  # `from lucerag import search` imports the subpackage
                yield node.lineno, f"{target}.{alias.name}"


MODULES = list(_modules())


def test_every_subpackage_has_a_layer():
    units = {_unit(m) for m, _ in MODULES} - {None}
    tops = {m.split(".")[1] for m, _ in MODULES if m.count(".") >= 1}
    unplaced = {t for t in tops if t not in RANK and not (SOURCES["lucerag"] / f"{t}.py").is_file()}
    assert units and not unplaced, unplaced


def _violations():
    found = []
    for module, path in MODULES:
        where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        unit = _unit(module)
        rank = FACE if unit is None else RANK[unit]
        seen = set()
        for line, target in _imports(module, path):
            other = _unit(target)
            if not target.startswith("lucerag.") or other is None or other == unit or (line, other) in seen:
                continue
            seen.add((line, other))
            if other == "bench" and unit not in ("bench", "cli"):
                found.append(f"{where}:{line} imports {target}: product code never imports bench")
            elif RANK[other] >= rank:
                found.append(f"{where}:{line} ({unit or 'face'}) imports {target} ({other}): "
                             "not below it in the data flow")
    return found


def test_imports_go_down_the_data_flow_only():
    assert _violations() == []


def test_the_check_can_fail(tmp_path):
    """An upward import is reported (so an empty list above means something)."""
    bad = tmp_path / "bad.py"
    bad.write_text("from lucerag.rag.api import RAG\n")
    global MODULES
    saved, MODULES = MODULES, [("lucerag.index.bad", bad)]
    try:
        found = _violations()
    finally:
        MODULES = saved
    assert len(found) == 1 and "imports lucerag.rag.api (rag)" in found[0]


def test_the_cli_and_the_public_face_import_nothing_heavy():
    """`lucerag --help` and `import lucerag` load no numpy, pydantic, JVM bridge or onnxruntime."""
    import subprocess
    import sys

    code = ("import sys, lucerag, lucerag.cli; "
            "print(sorted(m for m in ('numpy', 'pydantic', 'jnius', 'onnxruntime', 'tokenizers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr
