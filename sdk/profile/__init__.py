"""Latency profiles: the analytic per-layer model, SCALE-Sim, measured tables, link."""

from splitsdk.profile.build import BACKENDS, build_profile, edge_bit_pairs
from splitsdk.profile.link import parse_rate
from splitsdk.profile.measured import MeasuredTable, load_measured
from splitsdk.profile.types import FLOAT_BITS, LatencyProfile, Link

__all__ = [
    "BACKENDS",
    "FLOAT_BITS",
    "LatencyProfile",
    "Link",
    "MeasuredTable",
    "build_profile",
    "edge_bit_pairs",
    "load_measured",
    "parse_rate",
]
