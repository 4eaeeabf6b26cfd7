"""Latency profiles: device descriptors, the analytic per-layer model, SCALE-Sim, measured tables, the link."""
