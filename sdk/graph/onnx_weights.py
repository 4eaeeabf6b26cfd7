"""The one lookup of an ONNX graph's constant tensors (weights): initialisers and Constant node outputs, also
seen through Identity and Cast nodes. The importer, the sensitivity measurement and ONNX fake-quantisation
all read (and fake-quantisation writes) weights through it, so a weight an exporter ships as a Constant
node is found everywhere an initialiser would be.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

_PASS_THROUGH = ("Identity", "Cast")
_CONSTANT_ATTRS = ("value", "value_float", "value_floats", "value_int", "value_ints")


@dataclass
class _Source:
    """Where a constant is stored: an initialiser or a Constant node; `casts` are the Cast targets on the way."""

    proto: Any  # onnx.TensorProto (initialiser) or onnx.NodeProto (Constant)
    casts: tuple[int, ...] = ()


class OnnxConstants:
    """The constant tensors of an ONNX graph by name: read with `get`, replaced in the graph with `set`."""

    def __init__(self, graph: Any) -> None:
        self._sources: dict[str, _Source] = {i.name: _Source(i) for i in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant" and any(a.name in _CONSTANT_ATTRS for a in node.attribute):
                self._sources[node.output[0]] = _Source(node)
            elif node.op_type in _PASS_THROUGH and node.input and node.input[0] in self._sources:
                src = self._sources[node.input[0]]
                casts = src.casts
                if node.op_type == "Cast":
                    casts = (*casts, int(next(a.i for a in node.attribute if a.name == "to")))
                self._sources[node.output[0]] = _Source(src.proto, casts)

    def __contains__(self, name: object) -> bool:
        return name in self._sources

    def names(self) -> set[str]:
        return set(self._sources)

    def get(self, name: str) -> np.ndarray | None:
        """The value of constant tensor `name` as its readers see it, or None when it is not a constant."""
        src = self._sources.get(name)
        if src is None:
            return None
        value = _stored(src.proto)
        for to in src.casts:
            value = value.astype(_np_dtype(to))
        return value

    def set(self, name: str, value: np.ndarray) -> None:
        """Replace the stored value behind `name` (through its casts, in the stored dtype)."""
        from onnx import helper, numpy_helper

        src = self._sources[name]
        stored = _stored(src.proto)
        tensor = numpy_helper.from_array(np.asarray(value).astype(stored.dtype).reshape(stored.shape))
        if _is_node(src.proto):
            for a in [a for a in src.proto.attribute if a.name in _CONSTANT_ATTRS]:
                src.proto.attribute.remove(a)
            src.proto.attribute.append(helper.make_attribute("value", tensor))
        else:
            tensor.name = src.proto.name
            src.proto.CopyFrom(tensor)


def _is_node(proto: Any) -> bool:
    return hasattr(proto, "op_type")


def _stored(proto: Any) -> np.ndarray:
    from onnx import helper, numpy_helper

    if not _is_node(proto):
        return np.asarray(numpy_helper.to_array(proto))
    for a in proto.attribute:
        if a.name in _CONSTANT_ATTRS:
            value = helper.get_attribute_value(a)
            return np.asarray(numpy_helper.to_array(value) if a.name == "value" else value)
    raise ValueError(f"Constant node '{proto.name}' has no value")


def _np_dtype(onnx_type: int) -> np.dtype[Any]:
    from onnx import helper

    return np.dtype(helper.tensor_dtype_to_np_dtype(onnx_type))
