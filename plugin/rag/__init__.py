"""The RAG layer: the ``RAG`` Python API, cited LLM context, OpenAI-compatible generation."""
