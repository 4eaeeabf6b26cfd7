"""splitsdk: collaborative edge-cloud DNN inference (AUTO-SPLIT).

The public API is what this module exports (`__all__`); submodules not listed here may change.
The stage functions are loaded on first use, so `import splitsdk` stays light (no NumPy or
TensorFlow until a stage runs).
"""

from __future__ import annotations

import importlib
from typing import Any

from splitsdk.errors import (
    DataError,
    ModelError,
    PlanError,
    ProfileError,
    SplitSdkError,
    TargetError,
    UnsupportedLayerError,
    WireError,
)

__version__ = "0.1.0"

# public name -> "module" that defines it (or "module:attribute" when the name differs): one entry
# function per stage of the data flow, model -> plan -> bundle -> edge project -> firmware -> receiver
_LAZY = {
    "load_graph": "splitsdk.graph",
    "LayerGraph": "splitsdk.graph",
    "load_target": "splitsdk.target",
    "build_profile": "splitsdk.profile",
    "Link": "splitsdk.profile.types",
    "load_dataset": "splitsdk.quant",
    "measure_sensitivity": "splitsdk.quant",
    "inspect_model": "splitsdk.inspect",
    "plan_model": "splitsdk.plan",
    "Constraints": "splitsdk.plan",
    "load_plan": "splitsdk.plan",
    "save_plan": "splitsdk.plan",
    "convert_plan": "splitsdk.convert",
    "load_bundle": "splitsdk.wire.bundle",
    "EdgeClient": "splitsdk.wire.edge",
    "generate": "splitsdk.codegen",
    "build": "splitsdk.toolchain.build:build_firmware",
    "emulate": "splitsdk.toolchain.emulate",
    "verify": "splitsdk.toolchain.verify",
    "ReceiverConfig": "splitsdk.cloud",
    "serve": "splitsdk.cloud",
}


def __getattr__(name: str) -> Any:
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module 'splitsdk' has no attribute {name!r}")
    module, _, attribute = where.partition(":")
    return getattr(importlib.import_module(module), attribute or name)


__all__ = [
    "DataError",
    "ModelError",
    "PlanError",
    "ProfileError",
    "SplitSdkError",
    "TargetError",
    "UnsupportedLayerError",
    "WireError",
    "__version__",
    *_LAZY,
]
