"""TLM benchmarks: the harness (``python -m benchmarks``) and its scenarios."""
