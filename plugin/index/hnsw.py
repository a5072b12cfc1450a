"""The index writer's HNSW graph and vectors-format settings: plain constants, cheap to import
(the CLI's option defaults read them at ``lucerag --help`` time)."""

# HNSW graph construction: neighbours per node (Lucene's M) and construction beam width. Lucene's
# defaults (16, 100) gave R@100 vs exact search of 0.924 at 50K and 0.757 at 200K passages
# (ef_search 400); 48/400 give 0.982 and 0.969 (0.990 at 200K with ef_search 800), at ~5x the
# graph-building time (docs/results.md).
HNSW_M = 48
HNSW_BEAM = 400
# Vectors formats (lucerag.Bridge.vectorsFormat): float32 HNSW, int8 scalar-quantised HNSW, and 1-bit
# binary-quantised HNSW ("BBQ"); the quantised ones keep the float vectors too, for exact rescoring.
VECTOR_FORMATS = ("float", "int8", "bbq")
DEFAULT_VECTOR_FORMAT = "float"
