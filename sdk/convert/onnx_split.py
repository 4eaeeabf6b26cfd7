"""ONNX models: split on the ONNX graph (`onnx.utils.extract_model`), each half through onnx2tf (NHWC).

onnx2tf runs in a child process in a scratch folder: it calls exit() on failures, prints a lot, and
for 4-D 3-channel inputs it would download a calibration sample file from the internet; we put
that file (made from our own calibration data) in its working folder first, so it never tries.
The edge half is then quantised by the TFLite converter exactly like a Keras edge model; the cloud
half ships as a float TFLite model (onnx2tf builds tf-keras models, which Keras 3 cannot load).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from splitsdk.convert.split import input_quantizer
from splitsdk.convert.tflite import convert_int8, run_converter, to_int8_tflite
from splitsdk.errors import ConvertError
from splitsdk.graph import LayerGraph
from splitsdk.quant import onnx_channels, quantize_kernel

ONNX2TF_CALIB = "calibration_image_sample_data_20x128x128x3_float32.npy"

_CHILD = """
import sys
import onnx2tf
onnx2tf.convert(input_onnx_file_path=sys.argv[1], output_folder_path=sys.argv[2], non_verbose=True,
                copy_onnx_input_output_names_to_tflite=True)
"""


def fake_quantize_onnx(model: Path, graph: LayerGraph, weight_bits: dict[str, int]) -> Any:
    """A copy of the ONNX model whose low-bit layers' kernels sit on the grid they ship on (per output channel)."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(model))
    inits = {i.name: i for i in proto.graph.initializer}
    for name, bits in sorted(weight_bits.items()):
        if bits >= 8:
            continue
        node = graph.layer(name).source
        init = inits[node.input[1]]
        w = numpy_helper.to_array(init).astype(np.float32)
        init.CopyFrom(numpy_helper.from_array(quantize_kernel(w, onnx_channels(node), bits), init.name))
    return proto


def extract(model: Path, inputs: list[str], outputs: list[str], out: Path) -> Path:
    import onnx.utils

    try:
        onnx.utils.extract_model(str(model), str(out), inputs, outputs, check_model=True)
    except Exception as exc:
        raise ConvertError(f"{model}: cannot cut the ONNX graph at {outputs or inputs}: {exc}") from exc
    return out


def _calibration_file(folder: Path, calib: np.ndarray) -> None:
    """onnx2tf's sample images (20 x 128 x 128 x 3, float32) from our calibration data."""
    import tensorflow as tf

    x = calib[:20]
    if x.ndim == 4 and x.shape[-1] == 3:
        imgs = tf.image.resize(x, (128, 128)).numpy().astype(np.float32)
    else:
        imgs = np.zeros((20, 128, 128, 3), np.float32)
    if len(imgs) < 20:
        imgs = np.concatenate([imgs] * (20 // len(imgs) + 1))[:20]
    np.save(folder / ONNX2TF_CALIB, imgs)


def onnx_to_saved_model(onnx_path: Path, workdir: Path, calib: np.ndarray, timeout_s: float = 900) -> Path:
    out = workdir / "saved_model"
    _calibration_file(workdir, calib)
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(onnx_path), str(out)], cwd=workdir, capture_output=True, text=True,
        timeout=timeout_s, env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    if proc.returncode != 0 or not (out / "saved_model.pb").exists():
        tail = [ln for ln in (proc.stdout + proc.stderr).strip().splitlines() if ln.strip()][-1:] or ["no output"]
        raise ConvertError(f"{onnx_path}: onnx2tf failed: {tail[0][:300]}")
    return out


def saved_model_to_tflite(saved: Path, calib: list[np.ndarray] | None) -> bytes:
    """int8 full-integer with int8 outputs when `calib` is given, else float."""
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_saved_model(str(saved))
    if calib is not None:
        return convert_int8(conv, calib, str(saved))
    return run_converter(conv, str(saved))


def convert_onnx_halves(
    model: Path, graph_inputs: list[str], crossing: list[str], outputs: list[str], calib: np.ndarray,
    edge_only: bool, cloud_only: bool, edge_float: bool = False,
) -> tuple[bytes, bytes]:
    """(int8 edge TFLite, float cloud TFLite) for a cut of an ONNX model; a float edge with `edge_float`
    (for a per-layer precision mix, quantised afterwards)."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if cloud_only:  # the frame crosses: quantise it on the edge, the whole model runs in the cloud
            edge = to_int8_tflite(input_quantizer(tuple(calib.shape[1:])), [calib])
            (work / "cloud").mkdir()
            return edge, saved_model_to_tflite(onnx_to_saved_model(model, work / "cloud", calib), None)
        edge_onnx = extract(model, graph_inputs, crossing, work / "edge.onnx")
        (work / "edge").mkdir()
        edge_saved = onnx_to_saved_model(edge_onnx, work / "edge", calib)
        edge = saved_model_to_tflite(edge_saved, None if edge_float else [calib])
        if edge_only:
            return edge, b""
        cloud_onnx = extract(model, crossing, outputs, work / "cloud.onnx")
        (work / "cloud").mkdir()
        cloud_saved = onnx_to_saved_model(cloud_onnx, work / "cloud", calib)
        return edge, saved_model_to_tflite(cloud_saved, None)
