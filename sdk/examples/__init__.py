"""Example models for the demo and the docs (built in code: no downloads)."""
