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


def op_names(content: bytes) -> list[str]:
    """The builtin op names of a TFLite model's operators, in execution order."""
    return [str(op["op_name"]) for op in interpreter(content)._get_ops_details()]  # noqa: SLF001 (its only op view)


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


def tensor_key(name: str) -> str:
    """A tensor name as both sides spell it: TFLite's `serving_default_` prefix and `:0` suffix dropped, every
    character outside [A-Za-z0-9_] as `_`, a `t` before a leading `_` (the names `splitsdk.convert.onnx_split`
    gives onnx2tf, which keeps them in the TFLite file)."""
    name = name.removeprefix("serving_default_")
    name = name[: -len(":0")] if name.endswith(":0") else name
    key = "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in name)
    return key if key[:1].isalnum() else f"t{key}"


def bind(details: list[dict[str, Any]], shapes: list[tuple[int, ...]], names: list[str] | None = None,
         what: str = "input") -> list[int]:
    """For each TFLite tensor of `details` (index order), the position among the values (`shapes`, `names`) that
    goes with it: by name (compared as `tensor_key`s), else by a shape only one value has. The converter may
    reorder inputs and outputs, so a position is never assumed when it could be wrong; an ambiguity raises
    ConvertError (one line)."""
    if len(details) != len(shapes):
        raise ConvertError(f"the TFLite model has {len(details)} {what}s, {len(shapes)} given")
    if len(details) == 1:
        return [0]
    keys = [tensor_key(n) for n in names] if names is not None else []
    order: list[int | None] = []
    for d in details:
        k = tensor_key(d["name"])
        order.append(keys.index(k) if k in keys and keys.count(k) == 1 else None)
    for i, d in enumerate(details):
        if order[i] is not None:
            continue
        shape = tuple(int(x) for x in d["shape"][1:])
        free = [j for j, s in enumerate(shapes) if tuple(s) == shape and j not in order]
        if len(free) != 1:
            have = "no value has" if not free else f"{len(free)} values have"
            raise ConvertError(f"TFLite {what} '{d['name']}' (shape {shape}): {have} that shape and no name "
                               f"matches it (given {names or 'no names'}): cannot bind the {what}s")
        order[i] = free[0]
    return [int(j) for j in order if j is not None]


def bind_inputs(details: list[dict[str, Any]], shapes: list[tuple[int, ...]],
                names: list[str] | None = None) -> list[int]:
    """`bind` for a model's inputs: for each input, the position of the value that feeds it."""
    return bind(details, shapes, names, "input")


def output_order(content: bytes, shapes: list[tuple[int, ...]], names: list[str] | None = None) -> list[int]:
    """For each wanted output (`shapes`, `names`, e.g. the source model's outputs), the TFLite output index
    holding it (`bind`)."""
    outs = interpreter(content).get_output_details()
    pos = bind(outs, shapes, names, "output")
    return [pos.index(k) for k in range(len(shapes))]


def run_tflite(content: bytes, inputs: list[np.ndarray], names: list[str] | None = None) -> list[np.ndarray]:
    """Run sample by sample; outputs by output index (the quantizer's signatures can point at stale tensors).
    Inputs are bound to the model's by `names` (the tensors' names, as `bind_inputs`), else by shape."""
    interp = interpreter(content)
    ins, outs = interp.get_input_details(), interp.get_output_details()
    order = bind_inputs(ins, [tuple(x.shape[1:]) for x in inputs], names)
    results: list[list[np.ndarray]] = [[] for _ in outs]
    for i in range(len(inputs[0])):
        for d, j in zip(ins, order, strict=True):
            interp.set_tensor(d["index"], to_input(inputs[j][i : i + 1], d))
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
