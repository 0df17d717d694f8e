"""Benchmark tables: experiment configs -> result files -> docs/RESULTS.md (``make tables``)."""
