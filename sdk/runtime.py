"""The TFLite runtime on the host (ai-edge-litert): interpreter, input quantisation, output matching.

Serves convert's checks, `verify`, `edge-sim` and the receiver's TFLite runner. Importing it loads
no TensorFlow, Keras, planner or converter: the runtime itself is imported on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from splitsdk.errors import ConvertError
from splitsdk.quiet import quiet


@dataclass(frozen=True)
class TensorQuant:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float
    zero_point: int


def interpreter(content: bytes, all_tensors: bool = False) -> Any:
    """A single-threaded ai-edge-litert interpreter; `all_tensors` keeps every intermediate tensor readable."""
    from ai_edge_litert.interpreter import Interpreter

    with quiet():  # the runtime announces its XNNPACK delegate on stderr
        interp = Interpreter(model_content=content, num_threads=1, experimental_preserve_all_tensors=all_tensors)
        interp.allocate_tensors()
    return interp


def io_details(content: bytes) -> tuple[list[TensorQuant], list[TensorQuant]]:
    """Inputs and outputs of a TFLite model in index order, with their quantisation."""
    interp = interpreter(content)

    def conv(d: dict[str, Any], i: int) -> TensorQuant:
        scale, zp = d["quantization"]
        return TensorQuant(i, d["name"], tuple(int(x) for x in d["shape"][1:]), np.dtype(d["dtype"]).name,
                           float(scale), int(zp))

    return ([conv(d, i) for i, d in enumerate(interp.get_input_details())],
            [conv(d, i) for i, d in enumerate(interp.get_output_details())])


def to_input(real: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """Real values -> a model input tensor: as is for float, quantised (rounding half away from zero,
    as the edge app's std::lround) for an integer input."""
    dtype = detail["dtype"]
    if not np.issubdtype(dtype, np.integer):
        return np.asarray(real).astype(dtype)
    scale, zp = detail["quantization"]
    q = np.asarray(real, dtype=np.float32) / np.float32(scale)
    info = np.iinfo(dtype)
    return np.clip(np.sign(q) * np.floor(np.abs(q) + 0.5) + zp, info.min, info.max).astype(dtype)


def run_tflite(content: bytes, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Run sample by sample; outputs by output index (the quantizer's signatures can point at stale tensors)."""
    interp = interpreter(content)
    ins, outs = interp.get_input_details(), interp.get_output_details()
    results: list[list[np.ndarray]] = [[] for _ in outs]
    for i in range(len(inputs[0])):
        for d, x in zip(ins, inputs, strict=True):
            interp.set_tensor(d["index"], to_input(x[i : i + 1], d))
        interp.invoke()
        for k, d in enumerate(outs):
            results[k].append(interp.get_tensor(d["index"])[0].copy())
    return [np.stack(r) for r in results]


def match_outputs(want: list[np.ndarray], content: bytes, probe: list[np.ndarray]) -> list[int]:
    """For each wanted output (wire order; float values on `probe`), the TFLite output index holding it.

    The converter may reorder outputs; match by shape and, among equal shapes, by the values on the
    probe batch (dequantised int8 against float), so the order is checked, not assumed.
    """
    _, outs = io_details(content)
    got = run_tflite(content, probe)
    order: list[int] = []
    for k, w in enumerate(want):
        cands = [o for o in outs if o.shape == tuple(w.shape[1:]) and o.index not in order]
        if not cands:
            raise ConvertError(f"edge model output {k} (shape {tuple(w.shape[1:])}) is missing from the TFLite file")
        errs = [float(np.mean(np.abs((got[o.index].astype(np.float32) - o.zero_point) * o.scale - w))) for o in cands]
        order.append(cands[int(np.argmin(errs))].index)
    return order
