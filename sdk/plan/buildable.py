"""Which layers the edge can run: measured by converting them, not assumed from a list.

Split k puts the first k layers of the topological order on the edge, so the cuts the edge can build
are k <= the index of the first layer that does not convert (prefix-monotone). Each distinct layer
configuration (Keras: class, config without the name, input shapes; ONNX: op type, attributes,
shapes) is converted alone, as a one-layer model with the same input shapes, through convert's own
path (`splitsdk.convert.tflite.to_int8_tflite`, full-integer int8 on a few random representative
samples; ONNX through onnx2tf as `splitsdk.convert.onnx_split`) and run on the host TFLite runtime.
A layer that cannot stand alone is tried within its prefix (the edge model convert would build).
The target may exclude ops its runtime cannot execute (`quant.unsupported_ops`).

Verdicts are cached under `cache_dir("buildable")` by (layer configuration, target name, converter
version), so a repeated plan converts nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from splitsdk.cache import cache_dir
from splitsdk.codec import CodecError, decode, dumps_json, write_atomic
from splitsdk.errors import ConvertError, first_line
from splitsdk.graph import LayerGraph
from splitsdk.target import Target

CACHE_VERSION = 1
SAMPLES = 4  # representative samples per conversion
REASON_CHARS = 200
_CONVERSIONS = [0]  # conversions tried in this process (what `BuildCheck.converted` counts)


@dataclass(frozen=True)
class SplitBound:
    """The first layer the edge cannot run: split indices above `index` are infeasible."""

    index: int  # in the topological order; the largest feasible split index
    layer: str
    op: str
    reason: str

    def describe(self) -> str:
        """'layer 'x', op LSTM (why)': for notes and the plan's reason."""
        return f"layer {self.layer!r}, op {self.op} ({self.reason})"


@dataclass(frozen=True)
class Verdict:
    """One cached verdict (the file format of `cache_dir("buildable")/<hash>.json`)."""

    version: int
    config: str  # the layer configuration the verdict is for (JSON text)
    target: str
    converter: str
    buildable: bool
    reason: str = ""
    how: str = ""  # "alone" | "in its prefix"


@dataclass(frozen=True)
class BuildCheck:
    """The result of `first_unbuildable`: the bound (None: every layer converts) and what it cost."""

    bound: SplitBound | None
    checked: int  # distinct layer configurations looked at
    converted: int  # conversions it took (0: every verdict came from the cache)

    def note(self, target: str) -> str:
        where = "every layer converts" if self.bound is None else f"the edge stops before {self.bound.describe()}"
        return (
            f"buildable on {target}: {where}; {self.checked} distinct layer configuration(s) checked with "
            f"{self.converted} conversion(s)" + ("" if self.converted else " (every verdict cached)")
        )


def converter_version() -> str:
    import tensorflow as tf

    return f"tensorflow {tf.__version__}"


def layer_config(graph: LayerGraph, name: str) -> str:
    """The configuration a verdict is for, as canonical JSON: what the converter sees of the layer."""
    layer = graph.layer(name)
    shapes = [[list(graph.tensors[t].shape), graph.tensors[t].dtype] for t in layer.inputs]
    data: dict[str, Any] = {"format": graph.source_format, "inputs": shapes}
    if graph.source_format == "onnx":
        node = layer.source
        import onnx.helper

        data["op"] = layer.op
        data["node"] = node.op_type
        data["attributes"] = {a.name: repr(onnx.helper.get_attribute_value(a)) for a in node.attribute}
        data["activation"] = layer.activation
        data["folded"] = len(layer.folded)
        data["outputs"] = [list(graph.tensors[t].shape) for t in layer.outputs]
    else:
        op = _keras_op(graph, name)
        config = {k: v for k, v in op.get_config().items() if k != "name"}
        data["class"] = type(op).__name__
        data["config"] = config
    return json.dumps(data, sort_keys=True, default=repr)


def excluded(graph: LayerGraph, name: str, target: Target) -> str | None:
    """Why the target's runtime cannot run the layer (`quant.unsupported_ops`), or None."""
    ops = set(target.quant.unsupported_ops)
    layer = graph.layer(name)
    names = {layer.op}
    if graph.source_format == "onnx":
        names.add(layer.source.op_type)
    else:
        names.add(type(_keras_op(graph, name)).__name__)
    hit = sorted(names & ops)
    if not hit:
        return None
    return f"{target.quant.runtime} on {target.name} does not run {hit[0]} (target quant.unsupported_ops)"


def first_unbuildable(graph: LayerGraph, target: Target, upto: int | None = None) -> BuildCheck:
    """The first layer of the topological order the edge cannot build, and how many conversions it took.

    Layers are checked in order up to the first that fails (later ones cannot be on the edge anyway),
    only the first `upto` where given (the rest is kept in the cloud by other means).
    When some configurations are not cached and the target excludes no op of the model, the whole model
    is converted first: if it builds, every layer does (one conversion instead of one per layer)."""
    full = graph.topological_order()
    order = full[:upto] if upto is not None else full
    version = converter_version()
    folder = cache_dir("buildable")
    configs = {name: layer_config(graph, name) for name in order}
    files = {c: folder / f"{_digest(c, target.name, version)}.json" for c in configs.values()}
    seen: dict[str, Verdict] = {}
    for config, path in files.items():
        cached = _read(path, config, target.name, version)
        if cached is not None:
            seen[config] = cached
    start = _CONVERSIONS[0]
    known_bad = any(not v.buildable for v in seen.values())
    if len(seen) < len(files) and not known_bad and len(order) == len(full) \
            and not any(excluded(graph, n, target) for n in order) and _builds(graph, order):
        for config in files:
            seen.setdefault(config, _store(files[config], Verdict(CACHE_VERSION, config, target.name, version,
                                                                  True, "", "in the whole model")))
    checked: set[str] = set()
    for index, name in enumerate(order):
        reason = excluded(graph, name, target)
        if reason is None:
            config = configs[name]
            checked.add(config)
            verdict = seen.get(config)
            if verdict is None:
                verdict = _store(files[config], _measure(graph, order, index, config, target.name, version))
                seen[config] = verdict
            if not verdict.buildable:
                reason = verdict.reason
        if reason is not None:
            bound = SplitBound(index, name, graph.layer(name).op, reason)
            return BuildCheck(bound, len(checked), _CONVERSIONS[0] - start)
    return BuildCheck(None, len(checked), _CONVERSIONS[0] - start)


def short_reason(exc: BaseException) -> str:
    """The converter's own words without MLIR locations: "'tf.TensorListReserve' op requires ..."."""
    cause = exc.__cause__ if isinstance(exc, ConvertError) and exc.__cause__ is not None else exc
    for line in str(cause).splitlines():
        if "error:" in line:
            text = re.sub(r"^.*?error:\s*(loc\(.*?\)\)+:\s*)?", "", line).strip()
            if text:
                return text[:REASON_CHARS]
    return first_line(cause, REASON_CHARS)


# -- measuring ---------------------------------------------------------------------------------------


def _digest(config: str, target: str, version: str) -> str:
    key = json.dumps([CACHE_VERSION, config, target, version])
    return hashlib.sha256(key.encode()).hexdigest()


def _read(path: Path, config: str, target: str, version: str) -> Verdict | None:
    """The cached verdict, or None (missing, unreadable, or for another key: measured again)."""
    try:
        verdict = decode(Verdict, json.loads(path.read_text(encoding="utf-8")), path.name)
    except (OSError, ValueError, CodecError):
        return None
    key = (verdict.version, verdict.config, verdict.target, verdict.converter)
    return verdict if key == (CACHE_VERSION, config, target, version) else None


def _store(path: Path, verdict: Verdict) -> Verdict:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, dumps_json(verdict))
    return verdict


def _measure(graph: LayerGraph, order: list[str], index: int, config: str, target: str, version: str) -> Verdict:
    """Convert the layer alone, else within its prefix, and run the result on the host runtime."""
    name = order[index]
    layer = graph.layer(name)
    try:
        _convert_and_run(graph, list(layer.inputs), [name], list(layer.outputs))
        how = "alone"
    except Exception as alone:  # the converter's and runtime's failures come in every exception type
        if not _builds(graph, order[: index + 1]):
            why = f"no int8 TFLite build: {short_reason(alone)}"
            return Verdict(CACHE_VERSION, config, target, version, False, why, "alone and in its prefix")
        how = "in its prefix"
    return Verdict(CACHE_VERSION, config, target, version, True, "", how)


def _builds(graph: LayerGraph, layers: list[str]) -> bool:
    """Whether a prefix of the order converts and runs (the whole model: with the model's outputs)."""
    outputs = list(graph.outputs) if len(layers) == len(graph) else list(graph.layer(layers[-1]).outputs)
    try:
        _convert_and_run(graph, list(graph.inputs), layers, outputs)
    except Exception:
        return False
    return True


def _convert_and_run(graph: LayerGraph, inputs: list[str], layers: list[str], outputs: list[str]) -> None:
    from splitsdk.runtime import run_tflite

    _CONVERSIONS[0] += 1
    rng = np.random.default_rng(0)
    calib = [rng.random((SAMPLES, *graph.tensors[t].shape), dtype=np.float32) for t in inputs]
    with contextlib.redirect_stdout(io.StringIO()):  # Keras' export print()s its endpoints: plan --json owns stdout
        if graph.source_format == "onnx":
            content = _onnx_tflite(graph, inputs, outputs, calib)
        else:
            content = _keras_tflite(graph, inputs, layers, outputs, calib)
    run_tflite(content, [x[:2] for x in calib])


def _keras_op(graph: LayerGraph, name: str) -> Any:
    call = graph.layer(name).source
    return getattr(call, "replacement", None) or call.op


def _keras_tflite(graph: LayerGraph, inputs: list[str], layers: list[str], outputs: list[str],
                  calib: list[np.ndarray]) -> bytes:
    import keras

    from splitsdk.convert.tflite import to_int8_tflite
    from splitsdk.graph import run_layers

    feeds = {t: keras.Input(shape=graph.tensors[t].shape, dtype=graph.tensors[t].dtype) for t in inputs}
    values = run_layers(graph, dict(feeds), layers)
    model = keras.Model([feeds[t] for t in inputs], [values[t] for t in outputs], name="buildable")
    return to_int8_tflite(model, calib)


def _onnx_tflite(graph: LayerGraph, inputs: list[str], outputs: list[str], calib: list[np.ndarray]) -> bytes:
    from splitsdk.convert.onnx_split import extract, onnx_to_saved_model, saved_model_to_tflite

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        whole = work / "model.onnx"
        whole.write_bytes(graph.source.SerializeToString())
        part = extract(whole, inputs, outputs, work / "part.onnx")
        saved = onnx_to_saved_model(part, work, calib[0])
        return saved_model_to_tflite(saved, calib)


__all__ = ["BuildCheck", "SplitBound", "Verdict", "first_unbuildable", "layer_config", "short_reason"]
