"""splitsdk: collaborative edge-cloud DNN inference (AUTO-SPLIT).

The public API is what this module re-exports; submodules not listed here may change.
Heavy dependencies (TensorFlow, ONNX) are imported lazily by the functions that need them.
"""

from __future__ import annotations

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
]
