"""Latency profiles: target descriptors, the analytic per-layer model, SCALE-Sim, measured tables, link."""

from splitsdk.profile.build import BACKENDS, build_profile, edge_bit_pairs
from splitsdk.profile.link import parse_rate
from splitsdk.profile.measured import MeasuredTable, load_measured
from splitsdk.profile.targets import (
    ComputeMode,
    Device,
    Qemu,
    QuantSupport,
    SysrootRecipe,
    Systolic,
    Target,
    Toolchain,
    list_targets,
    load_target,
)
from splitsdk.profile.types import FLOAT_BITS, LatencyProfile, Link

__all__ = [
    "BACKENDS",
    "FLOAT_BITS",
    "ComputeMode",
    "Device",
    "LatencyProfile",
    "Link",
    "MeasuredTable",
    "Qemu",
    "QuantSupport",
    "SysrootRecipe",
    "Systolic",
    "Target",
    "Toolchain",
    "build_profile",
    "edge_bit_pairs",
    "list_targets",
    "load_measured",
    "load_target",
    "parse_rate",
]
