"""Per-layer precision mixes through ai-edge-quantizer: int8, int16 activations x int8 weights,
dynamic-range int8 and float layers in one edge model.

The TF converter quantises a whole model one way; a plan may ask for a different precision per
layer. Here the (fake-quantised) edge model is converted to float TFLite, each plan layer is found
among the TFLite ops by value (the op whose output equals the layer's output on a probe sample),
and ai-edge-quantizer gets one recipe entry per op. Two of its quirks are worked around:

- an edge output that also feeds a later layer is rewired to a requantised copy, which can break
  the later layer (an int16 op fed int8) and leaves the signature pointing at the stale tensor. So
  such outputs are hidden from it and put back afterwards; outputs are read by index, never by
  signature;
- outputs keep the precision of their producer. The bundle sends int8, so an int16 or float output
  gets a QUANTIZE op to int8 on its calibrated range.

The precision each layer really executes is read back from the quantised file and must be the
plan's: a layer the quantiser left at another precision is an error naming the layer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from splitsdk.errors import ConvertError, first_line
from splitsdk.profile.types import FLOAT_BITS
from splitsdk.quant import minmax_grid
from splitsdk.quiet import quiet
from splitsdk.runtime import interpreter, run_tflite

INT8, INT16, FLOAT32 = "int8", "int16", "float32"
WEIGHTED_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"}
_MATCH_RTOL = 1e-3


@dataclass(frozen=True)
class Precision:
    """What one layer executes: its weights' and activations' containers (32 = float)."""

    weights: int  # 0: the layer has no weights
    activations: int

    @property
    def name(self) -> str:
        if self.activations == FLOAT_BITS:
            return "dynamic_int8" if self.weights == 8 else "float32"
        return "int16x8" if self.activations == 16 else "int8"


@dataclass(frozen=True)
class MixedModel:
    content: bytes
    executed: dict[str, Precision]  # plan layer -> what its op executes in the file
    ops: dict[str, str]  # plan layer -> name of the TFLite tensor its op writes


def to_mixed_tflite(
    flat: bytes,
    reference: Callable[[np.ndarray], list[np.ndarray]],
    layers: list[str],
    want: dict[str, Precision],
    calib: np.ndarray,
) -> MixedModel:
    """`flat`: the float TFLite edge model; `reference(x)`: each of `layers`' float output on `x` (NHWC);
    `want`: each layer's precision. Returns the edge model with those precisions and int8 outputs."""
    from ai_edge_litert.tools import flatbuffer_utils as fb

    ops = _layer_ops(flat, reference, layers, calib[:1])
    lost = [n for n in layers if n not in ops and want[n].name != "int8"]
    if lost:
        raise ConvertError(
            f"layer {lost[0]!r}: no TFLite op computes its output (the converter fused it into a neighbour), "
            f"so it cannot run at {want[lost[0]].name} on its own"
        )
    model = fb.read_model_from_bytearray(bytearray(flat))
    outputs = [bytes(model.subgraphs[0].tensors[i].name).decode() for i in model.subgraphs[0].outputs]
    ranges = _output_ranges(flat, calib)
    _hide_consumed_outputs(model)
    quantised = _quantise(bytes(fb.convert_object_to_bytearray(model)), ops, want, calib)
    model = fb.read_model_from_bytearray(bytearray(quantised))
    _int8_outputs(model, outputs, ranges)
    _widen_through_float(model)
    content = bytes(fb.convert_object_to_bytearray(model))
    executed = executed_precisions(content, ops)
    for name in layers:
        got, asked = executed.get(name), want[name]
        if got is not None and (got.activations, got.weights or asked.weights) != (asked.activations, asked.weights):
            raise ConvertError(
                f"layer {name!r}: the plan asks {asked.name}, but ai-edge-quantizer left its op "
                f"'{ops[name]}' at {got.name} (this op has no {asked.name} kernel in the quantiser)"
            )
    return MixedModel(content, executed, ops)


def _layer_ops(
    flat: bytes, reference: Callable[[np.ndarray], list[np.ndarray]], layers: list[str], x: np.ndarray
) -> dict[str, str]:
    """Plan layer -> output tensor name of the first TFLite op (execution order) computing its value."""
    interp = interpreter(flat, all_tensors=True)
    with quiet():
        interp.set_tensor(interp.get_input_details()[0]["index"], x.astype(np.float32))
        interp.invoke()
    refs = dict(zip(layers, reference(x), strict=True))
    details = interp.get_tensor_details()
    found: dict[str, str] = {}
    for op in interp._get_ops_details():  # noqa: SLF001 (the only per-op view the runtime offers)
        for t in op["outputs"]:
            if t < 0:
                continue
            value = interp.get_tensor(t)
            for name in layers:
                ref = refs[name]
                if name in found or ref.shape != value.shape:
                    continue
                if np.max(np.abs(value - ref)) <= _MATCH_RTOL * max(1.0, float(np.max(np.abs(ref)))):
                    found[name] = str(details[t]["name"])
                    break
    return found


def _output_ranges(flat: bytes, calib: np.ndarray) -> dict[str, tuple[float, float]]:
    """Each float output's range over the calibration samples."""
    names = [str(d["name"]) for d in interpreter(flat).get_output_details()]
    values = run_tflite(flat, [calib])
    return {n: (float(v.min()), float(v.max())) for n, v in zip(names, values, strict=True)}


def _hide_consumed_outputs(model: Any) -> None:
    """Drop graph outputs that other ops read (the quantiser would rewire them); at least one stays."""
    sg = model.subgraphs[0]
    read = {i for op in sg.operators for i in op.inputs}
    keep = [i for i in sg.outputs if i not in read]
    sg.outputs = keep
    for sig in model.signatureDefs or []:
        sig.outputs = [o for o in sig.outputs if o.tensorIndex in keep]


def _quantise(flat: bytes, ops: dict[str, str], want: dict[str, Precision], calib: np.ndarray) -> bytes:
    from ai_edge_quantizer import calibrator, quantizer
    from ai_edge_quantizer.utils import qsv_utils

    with quiet():
        q = quantizer.Quantizer(flat)
        q.add_static_config(regex=".*", operation_name="*", activation_num_bits=8, weight_num_bits=8)
        for layer, tensor in sorted(ops.items()):
            regex = "^" + re.escape(tensor) + ";$"  # an op's scope is its output names, each followed by ';'
            p = want[layer]
            if p.activations == FLOAT_BITS and p.weights == 8:
                q.add_dynamic_config(regex=regex, operation_name="*", num_bits=8)
            elif p.activations == FLOAT_BITS:
                q.update_quantization_recipe(regex=regex, operation_name="*", algorithm_key="no_quantize")
            elif p.activations != 8:
                q.add_static_config(regex=regex, operation_name="*", activation_num_bits=16, weight_num_bits=8)
        interp = interpreter(flat)
        key = next(iter(interp.get_signature_list()))
        name = interp.get_signature_list()[key]["inputs"][0]

        def samples() -> Iterator[dict[str, np.ndarray]]:
            for i in range(len(calib)):
                yield {name: calib[i : i + 1].astype(np.float32)}

        try:
            # global min/max over the samples, as the TF converter calibrates (the quantiser's default
            # moving average clips the tails: on random-normal calibration data it tripled the error)
            calib_run = calibrator.Calibrator(flat, num_threads=1, qsv_update_func=qsv_utils.min_max_update)
            calib_run.calibrate({key: list(samples())}, q._recipe_manager)  # noqa: SLF001 (what calibrate() uses)
            ranges = calib_run.get_model_qsvs()
            result = q.quantize(ranges, enable_progress_bar=False, enable_progress_report=False)
        except Exception as exc:
            raise ConvertError(f"ai-edge-quantizer failed on the edge model: {first_line(exc, 300)}") from exc
    return bytes(result.quantized_model)


def _tensor_type(code: int) -> str:
    from ai_edge_litert.tools import flatbuffer_utils as fb

    return fb.type_to_name(code).lower()


def _int8_outputs(model: Any, names: list[str], ranges: dict[str, tuple[float, float]]) -> None:
    """Graph outputs back in their original order, each an int8 tensor (a QUANTIZE op where needed)."""
    from ai_edge_litert.tools import flatbuffer_utils as fb

    sg = model.subgraphs[0]
    by_name = {bytes(t.name).decode(): i for i, t in enumerate(sg.tensors)}
    outputs = []
    for name in names:
        src = by_name[name]
        if _tensor_type(sg.tensors[src].type) != INT8:
            requant = [
                op.outputs[0] for op in sg.operators
                if src in op.inputs and fb.opcode_to_name(model, op.opcodeIndex) == "QUANTIZE"
                and _tensor_type(sg.tensors[op.outputs[0]].type) == INT8
            ]
            src = requant[0] if requant else _append_quantize(model, src, ranges[name])
        outputs.append(src)
    sg.outputs = outputs
    for sig in model.signatureDefs or []:  # point the signature at the outputs too (ours are read by index)
        sig.outputs = [_signature_tensor(f"output_{k}", i) for k, i in enumerate(outputs)]


def _widen_through_float(model: Any) -> None:
    """Rewrite each int8 -> int16 QUANTIZE as DEQUANTIZE to float, then QUANTIZE to int16: TFLite 2.14's
    QUANTIZE requantises int16 -> int8 but refuses int8 -> int16 (the camera's runtime fails to prepare)."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fb

    sg = model.subgraphs[0]
    k = 0
    while k < len(sg.operators):
        op = sg.operators[k]
        src = int(op.inputs[0]) if len(op.inputs) else -1
        if (
            fb.opcode_to_name(model, op.opcodeIndex) == "QUANTIZE"
            and _tensor_type(sg.tensors[src].type) == INT8
            and _tensor_type(sg.tensors[op.outputs[0]].type) == INT16
        ):
            mid = _new_tensor(sg, sg.tensors[src], b"_float", schema.TensorType.FLOAT32)
            deq = schema.OperatorT()
            deq.opcodeIndex = _opcode(model, schema.BuiltinOperator.DEQUANTIZE)
            deq.inputs, deq.outputs = [src], [mid]
            op.inputs = [mid]
            sg.operators.insert(k, deq)
            k += 1
        k += 1


def _new_tensor(sg: Any, like: Any, suffix: bytes, dtype: int) -> int:
    """A new activation tensor shaped like `like`, unquantised; returns its index."""
    from ai_edge_litert import schema_py_generated as schema

    tensor = schema.TensorT()
    tensor.shape, tensor.type = list(like.shape), dtype
    tensor.name = bytes(like.name) + suffix
    tensor.buffer = 0
    sg.tensors.append(tensor)
    return len(sg.tensors) - 1


def _opcode(model: Any, builtin: int) -> int:
    """Index of the builtin operator code, added (version 1, as the quantiser adds them) if missing."""
    from ai_edge_litert import schema_py_generated as schema

    for i, code in enumerate(model.operatorCodes):
        if code.builtinCode == builtin:
            return i
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = builtin
    code.version = 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _signature_tensor(name: str, index: int) -> Any:
    from ai_edge_litert import schema_py_generated as schema

    t = schema.TensorMapT()
    t.name, t.tensorIndex = name, index
    return t


def _append_quantize(model: Any, src: int, lo_hi: tuple[float, float]) -> int:
    """A QUANTIZE op from tensor `src` (float or int16) to a new int8 tensor on the range `lo_hi`."""
    from ai_edge_litert import schema_py_generated as schema

    scale, code_zero_point = minmax_grid(*lo_hi, 8)
    zero_point = code_zero_point - 128  # int8 holds the codes 0..255 shifted by -128
    sg = model.subgraphs[0]
    dst = _new_tensor(sg, sg.tensors[src], b"_int8", schema.TensorType.INT8)
    sg.tensors[dst].quantization = schema.QuantizationParametersT()
    sg.tensors[dst].quantization.scale, sg.tensors[dst].quantization.zeroPoint = [scale], [zero_point]
    op = schema.OperatorT()
    op.opcodeIndex = _opcode(model, schema.BuiltinOperator.QUANTIZE)
    op.inputs, op.outputs = [src], [dst]
    sg.operators.append(op)
    return dst


def executed_precisions(content: bytes, ops: dict[str, str]) -> dict[str, Precision]:
    """Read back, per plan layer, the containers its op's weights and output have in the file."""
    from ai_edge_litert.tools import flatbuffer_utils as fb

    model = fb.read_model_from_bytearray(bytearray(content))
    sg = model.subgraphs[0]
    by_name = {bytes(t.name).decode(): i for i, t in enumerate(sg.tensors)}
    producer = {o: op for op in sg.operators for o in op.outputs}
    bits = {INT8: 8, INT16: 16, FLOAT32: FLOAT_BITS}
    out: dict[str, Precision] = {}
    for layer, tensor in ops.items():
        idx = by_name.get(tensor)
        op = producer.get(idx) if idx is not None else None
        if op is None:
            continue
        act = bits.get(_tensor_type(sg.tensors[idx].type), 0)
        weights = 0
        if fb.opcode_to_name(model, op.opcodeIndex) in WEIGHTED_OPS and len(op.inputs) > 1:
            w = op.inputs[1]
            wop = producer.get(w)
            if wop is not None and fb.opcode_to_name(model, wop.opcodeIndex) == "DEQUANTIZE":
                w = wop.inputs[0]  # weight-only: stored quantised, computed in float
            weights = bits.get(_tensor_type(sg.tensors[w].type), 0)
        out[layer] = Precision(weights, act)
    return out
