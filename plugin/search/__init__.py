"""The query path: BM25 and HNSW searchers, fusion, the relevance filter's calibrator, and the ``Retriever`` that runs them."""
