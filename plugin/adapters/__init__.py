"""Framework adapters: LangChain, LlamaIndex, MCP."""
