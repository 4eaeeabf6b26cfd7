"""Per-layer quantisation sensitivity measured on calibration data."""

from splitsdk.quant.calib import Dataset, load_dataset
from splitsdk.quant.sensitivity import (
    measure_sensitivity,
    minmax_grid,
    quantize_range,
    quantize_symmetric,
    sensitivity_from_json,
    sensitivity_to_json,
)
from splitsdk.quant.types import Sensitivity

__all__ = [
    "Dataset",
    "Sensitivity",
    "load_dataset",
    "measure_sensitivity",
    "minmax_grid",
    "quantize_range",
    "quantize_symmetric",
    "sensitivity_from_json",
    "sensitivity_to_json",
]
