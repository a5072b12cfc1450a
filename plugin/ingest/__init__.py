"""Documents into an index: chunking, the encode-and-write pipeline, and the import of precomputed vectors."""
