"""ONNX models: split on the ONNX graph (`onnx.utils.extract_model`), each half through onnx2tf (NHWC).

onnx2tf runs in a child process in a scratch folder: it calls exit() on failures, prints a lot, and
for 4-D 3-channel inputs it would download a calibration sample file from the internet; we put
that file (made from our own calibration data) in its working folder first, so it never tries.
The edge half is then quantised by the TFLite converter exactly like a Keras edge model; the cloud
half ships as a float TFLite model (onnx2tf builds tf-keras models, which Keras 3 cannot load).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np

from splitsdk.convert.split import input_quantizer
from splitsdk.convert.tflite import convert_int8, run_converter, to_int8_tflite
from splitsdk.errors import ConvertError, first_line
from splitsdk.graph import LayerGraph
from splitsdk.graph.onnx_import import detect_layout
from splitsdk.graph.onnx_weights import OnnxConstants
from splitsdk.quant import onnx_channels, quantize_kernel
from splitsdk.runtime import op_names, tensor_key
from splitsdk.toolchain.doctor import missing_package

EDGE_CONTAINER_BITS = 8
ONNX2TF_CALIB = "calibration_image_sample_data_20x128x128x3_float32.npy"

_CHILD = """
import sys
import onnx2tf
onnx2tf.convert(input_onnx_file_path=sys.argv[1], output_folder_path=sys.argv[2], non_verbose=True,
                copy_onnx_input_output_names_to_tflite=True,
                keep_nwc_or_nhwc_or_ndhwc_input_names=sys.argv[3].split(",") if sys.argv[3] else None)
"""


def fake_quantize_onnx(model: Path, graph: LayerGraph, weight_bits: dict[str, int]) -> Any:
    """A copy of the ONNX model whose low-bit layers' kernels sit on the grid they ship on (per output channel)."""
    import onnx

    proto = onnx.load(str(model))
    quantize_onnx_weights(proto, graph, weight_bits)
    return proto


def quantize_onnx_weights(proto: Any, graph: LayerGraph, weight_bits: dict[str, int], container: bool = False) -> None:
    """Put, in place, the kernels of `weight_bits`' layers below 8 bits on their grid (per output channel); with
    `container` the 8-bit ones too (the int8 file's own rounding, for the float simulation)."""
    consts = OnnxConstants(proto.graph)  # initialisers and Constant nodes, as the importer reads them
    top = EDGE_CONTAINER_BITS if container else EDGE_CONTAINER_BITS - 1
    for name, bits in sorted(weight_bits.items()):
        node = graph.layer(name).source
        w = consts.get(node.input[1]) if bits <= top and len(node.input) > 1 else None
        if w is not None and w.dtype.kind == "f":
            consts.set(node.input[1], quantize_kernel(w.astype(np.float32), onnx_channels(node), bits))


def extract(model: Path, inputs: list[str], outputs: list[str], out: Path) -> Path:
    import onnx.utils

    try:
        onnx.utils.extract_model(str(model), str(out), inputs, outputs, check_model=True)
    except Exception as exc:
        raise ConvertError(f"cannot cut the ONNX graph at {outputs or inputs}: {first_line(exc)}") from exc
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


def sanitize_names(proto: Any) -> dict[str, str]:
    """Rename, in place, every node and tensor (graph inputs and outputs, initialisers, value infos, the
    graphs of If/Loop nodes) to a name onnx2tf can turn into TensorFlow op names: `runtime.tensor_key`'s
    spelling ([A-Za-z0-9_], starting with a letter or digit), made unique. Returns {old tensor name: new};
    the TFLite files keep the new names, and every reader matches names through `tensor_key`, so a tensor
    finds its way back to the ONNX name."""
    used_tensors: set[str] = set()
    used_nodes: set[str] = set()
    renamed: dict[str, str] = {}

    def fresh(name: str, used: set[str]) -> str:
        base = tensor_key(name)
        new, k = base, 1
        while new in used:
            new, k = f"{base}_{k}", k + 1
        used.add(new)
        return new

    def tensor(name: str) -> str:
        if name and name not in renamed:
            renamed[name] = fresh(name, used_tensors)
        return renamed.get(name, name)  # "" (an omitted optional input) stays

    def walk(graph: Any) -> None:
        for info in [*graph.input, *graph.output, *graph.value_info, *graph.initializer]:
            info.name = tensor(info.name)
        for node in graph.node:
            node.name = fresh(node.name or node.op_type, used_nodes)
            node.input[:] = [tensor(n) for n in node.input]
            node.output[:] = [tensor(n) for n in node.output]
            for attr in node.attribute:
                for sub in [attr.g, *attr.graphs] if attr.HasField("g") else attr.graphs:
                    walk(sub)

    walk(proto.graph)
    return renamed


# lines of TensorFlow's and absl's logging, not onnx2tf's own words
_LOG_NOISE = re.compile(
    r"^(?:[WIEF]\d{4} [\d:. ]+|\d{4}-\d\d-\d\d[ T][\d:.]+|WARNING: All log messages|To enable the following"
    r"|This TensorFlow binary is optimized|\s*(?:File \"|\^+$))"
)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def onnx2tf_error(output: str, workdir: Path, onnx_path: Path) -> str:
    """onnx2tf's own error line in its output: the last line saying ERROR/Error/Exception that is not a
    TensorFlow log line, else its last line of its own; the scratch folder's paths read as the model's."""
    lines = [_ANSI.sub("", ln).strip() for ln in output.splitlines()]
    own = [ln for ln in lines if ln and not _LOG_NOISE.match(ln)]
    errors = [ln for ln in own if re.search(r"error|exception|does not match|not supported", ln, re.I)
              and not ln.startswith("ERROR: The trace log is below")]
    line = (errors or own or ["no output"])[-1]
    line = line.removeprefix("ERROR:").strip()
    return line.replace(str(workdir / "named.onnx"), onnx_path.name).replace(str(workdir), ".")[:300]


def onnx_to_saved_model(onnx_path: Path, workdir: Path, calib: np.ndarray, timeout_s: float = 900,
                        channels_last: Collection[str] | None = None) -> Path:
    """onnx2tf on a copy of the model whose node and tensor names are sanitised (`sanitize_names`).
    `channels_last`: the (original) names of the inputs that are channels-last, when the caller knows it from a
    larger graph; None: detected on this graph."""
    import onnx

    if importlib.util.find_spec("onnx2tf") is None:
        raise ConvertError(f"{onnx_path}: {missing_package('onnx2tf', 'converting an ONNX model')}")
    out = workdir / "saved_model"
    _calibration_file(workdir, calib)
    proto = onnx.load(str(onnx_path))
    renamed = sanitize_names(proto)
    onnx.save(proto, str(workdir / "named.onnx"))
    # inputs already channels-last (a tf2onnx export) stay so: onnx2tf would transpose them as if NCHW
    if channels_last is None:
        nhwc = [i.name for i in proto.graph.input if detect_layout(proto.graph, i.name).channels_last_input]
    else:
        nhwc = [renamed.get(name, name) for name in channels_last]
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(workdir / "named.onnx"), str(out), ",".join(nhwc)], cwd=workdir,
        capture_output=True,
        text=True, timeout=timeout_s, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    if proc.returncode != 0 or not (out / "saved_model.pb").exists():
        why = onnx2tf_error(proc.stdout + proc.stderr, workdir, onnx_path)
        raise ConvertError(f"onnx2tf failed on the {onnx_path.stem} ONNX graph: {why}")
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
    import onnx

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if cloud_only:  # the frame crosses: quantise it on the edge, the whole model runs in the cloud
            edge = to_int8_tflite(input_quantizer(tuple(calib.shape[1:])), [calib])
            (work / "cloud").mkdir()
            return edge, saved_model_to_tflite(onnx_to_saved_model(model, work / "cloud", calib), None)
        edge_onnx = extract(model, graph_inputs, crossing, work / "edge.onnx")
        (work / "edge").mkdir()
        # the frame's layout is the whole model's: an edge half of layout ops only (tf2onnx's input Transpose)
        # has no convolution to tell it by, and onnx2tf would take an NHWC frame for NCHW
        full = onnx.load(str(model)).graph
        nhwc = [name for name in graph_inputs if detect_layout(full, name).channels_last_input]
        edge_saved = onnx_to_saved_model(edge_onnx, work / "edge", calib, channels_last=nhwc)
        edge = saved_model_to_tflite(edge_saved, None if edge_float else [calib])
        if not edge_float and not op_names(edge):  # onnx2tf cancelled the layout ops: send the frame, quantised
            edge = to_int8_tflite(input_quantizer(tuple(calib.shape[1:])), [calib])
        if edge_only:
            return edge, b""
        cloud_onnx = extract(model, crossing, outputs, work / "cloud.onnx")
        (work / "cloud").mkdir()
        cloud_saved = onnx_to_saved_model(cloud_onnx, work / "cloud", calib)
        return edge, saved_model_to_tflite(cloud_saved, None)
