"""The HTTP service: the app, its schemas and its metrics."""
