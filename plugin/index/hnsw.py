"""The index writer's HNSW graph and vectors-format settings: plain constants, cheap to import
(the CLI's option defaults read them at ``lucerag --help`` time)."""

# HNSW graph construction: neighbours per node (Lucene's M) and construction beam width. Lucene's
# defaults (16, 100) gave R@100 vs exact search of 0.924 at 50K and 0.757 at 200K passages
# (ef_search 400); 48/400 give 0.982 and 0.969 (0.990 at 200K with ef_search 800), at ~5x the
# graph-building time (docs/results.md).
HNSW_M = 48
HNSW_BEAM = 400
# A segment (Lucene's unit of an index) gets an HNSW graph only from this many vectors; a smaller one
# is written without (no graph-building time at all) and searched exhaustively. lucerag's dense
# searcher scans an index of fewer passages exactly anyway (searchers.EXACT_BELOW is this number:
# an int8 scan plus float rescoring, lucerag.search.scan), so its graph would never be read. Where
# the two cross: at 100K x 384 the scan costs ~7.8 ms on an AVX2 EPYC (R@100 1.0), the default graph
# at ef_search 400 ~5.3 ms at 50K and ~9.3 ms at 200K (R@100 0.98 / 0.97); at 50K the scan is 3.4 ms,
# and skipping the graph cuts a 50K build's CPU from ~160 s to ~8 s (docs/results.md). Lucene scores
# every vector of a graph-less segment of a larger index (appended batches) until a merge gives it
# a graph.
GRAPH_FROM = 100_000


def graph_threshold(graph_from: int) -> int:
    """Lucene's ``tinySegmentsThreshold`` T for "a graph from about ``graph_from`` vectors": Lucene
    builds a segment's graph when its n vectors satisfy n > ln(n) * T (to within one vector in
    ten thousand of ``graph_from``). 0 always builds one."""
    import math

    if graph_from <= 2:
        return 0
    return math.ceil(graph_from / math.log(graph_from))


# Vectors formats (lucerag.Bridge.vectorsFormat): float32 HNSW, int8 scalar-quantised HNSW, and 1-bit
# binary-quantised HNSW ("BBQ"); the quantised ones keep the float vectors too, for exact rescoring.
VECTOR_FORMATS = ("float", "int8", "bbq")
DEFAULT_VECTOR_FORMAT = "float"
