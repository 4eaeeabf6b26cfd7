"""Per-layer quantisation sensitivity measured on calibration data, and the one set of quantisers (`grid`)."""

from splitsdk.quant.calib import Dataset, load_dataset, load_graph_for_data, parse_shape, sample_shape
from splitsdk.quant.grid import (
    CONTAINER_BITS,
    Channels,
    RangeCalibration,
    activation_grid,
    fake_quantize,
    fake_quantize_keras,
    keras_channels,
    keras_kernels,
    minmax_grid,
    onnx_channels,
    quantize_kernel,
    quantize_range,
    quantize_symmetric,
    quantize_weights,
    value_range,
    weight_errors,
)
from splitsdk.quant.sensitivity import (
    measure_sensitivity,
    sensitivity_from_json,
    sensitivity_to_json,
)
from splitsdk.quant.types import Sensitivity

__all__ = [
    "CONTAINER_BITS",
    "Channels",
    "Dataset",
    "RangeCalibration",
    "Sensitivity",
    "activation_grid",
    "fake_quantize",
    "fake_quantize_keras",
    "keras_channels",
    "keras_kernels",
    "load_dataset",
    "load_graph_for_data",
    "parse_shape",
    "sample_shape",
    "measure_sensitivity",
    "minmax_grid",
    "onnx_channels",
    "quantize_kernel",
    "quantize_range",
    "quantize_symmetric",
    "quantize_weights",
    "sensitivity_from_json",
    "sensitivity_to_json",
    "value_range",
    "weight_errors",
]
