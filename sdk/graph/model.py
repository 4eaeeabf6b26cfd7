"""The LayerGraph: one layer call per node, one tensor per edge, whatever format the model came in.

Shapes never include the batch dimension. 4-D feature maps are NHWC (ONNX models are reported in
NHWC too, the layout onnx2tf ships), so a split table does not depend on the source format.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import networkx as nx
import numpy as np


@dataclass(frozen=True)
class TensorInfo:
    """A tensor of the model: a model input or one output of a layer call."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    producer: str | None = None  # layer name; None for a model input

    @property
    def elements(self) -> int:
        return math.prod(self.shape) if self.shape else 1


@dataclass
class Layer:
    """One call of a layer (a shared layer called twice is two Layers with the same `weight_key`)."""

    name: str
    op: str
    inputs: list[str]
    outputs: list[str]
    weights: int = 0
    macs: int = 0
    weight_key: str = ""  # layers sharing weights share this key; weights count once per key
    activation: str | None = None  # fused activation ("relu", "relu6", ...), None for linear
    folded: list[str] = field(default_factory=list)  # names of the layers merged into this one
    attrs: dict[str, Any] = field(default_factory=dict)  # op geometry: kernel, strides, filters, groups
    # Format-specific handle used to rebuild or run the layer (e.g. the Keras layer and its call node).
    source: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.weight_key:
            self.weight_key = self.name

    @property
    def quantizable(self) -> bool:
        """Whether the layer has weights that a bit width applies to."""
        return self.weights > 0


@dataclass(frozen=True)
class CutTensor:
    """A tensor that crosses a cut: produced on the edge (or a model input) and read in the cloud.

    The graph's view, before any bits are chosen; the plan's `PlannedCrossing` adds the bits, the
    bundle's `ManifestCrossing` the quantisation convert calibrated."""

    tensor: str
    shape: tuple[int, ...]
    elements: int


@dataclass(frozen=True)
class SplitCandidate:
    """A prefix of the topological order: `edge_layers` run on the edge, the rest in the cloud.

    Index 0 is CLOUD-ONLY (the model input crosses); the last index is EDGE-ONLY (nothing crosses:
    the outputs are the results). `edge_weights` counts each shared weight set once;
    `peak_activation_elements` is the largest live set while the edge runs the prefix, the input
    frame and the crossing tensors (kept until sent) included.
    """

    index: int
    edge_layers: tuple[str, ...]
    crossing: tuple[CutTensor, ...]
    transmit_elements: int
    edge_weights: int
    peak_activation_elements: int

    @property
    def last_layer(self) -> str | None:
        return self.edge_layers[-1] if self.edge_layers else None


@dataclass(frozen=True)
class LiveIntervals:
    """The live sets of an edge prefix as intervals: `tensors[j]` is live at step s iff
    `first[j] <= s <= last[j]` (the same sets as `LayerGraph.live_sets`, see there).

    As a 0/1 step-by-tensor matrix, the memory of every step for a vector of per-tensor sizes is one
    matrix-vector product, and the peaks of many size vectors one matrix product.
    """

    steps: int
    tensors: tuple[str, ...]
    first: np.ndarray  # int, per tensor
    last: np.ndarray  # int, per tensor

    @cached_property
    def member(self) -> np.ndarray:
        """steps x tensors, 1.0 where the tensor is live (float: the products go through BLAS)."""
        s = np.arange(self.steps)[:, None]
        return ((self.first[None, :] <= s) & (s <= self.last[None, :])).astype(np.float64)

    def peaks(self, sizes: np.ndarray) -> np.ndarray:
        """The largest step total of each row of `sizes` (... x tensors, integers, e.g. bytes), as int64.

        Exact: every product and partial sum is an integer below 2**53, so the float sums are exact."""
        sizes = np.asarray(sizes, dtype=np.float64)
        if self.steps == 0:
            return np.zeros(sizes.shape[:-1], dtype=np.int64)
        return np.asarray((sizes @ self.member.T).max(axis=-1), dtype=np.int64)


class LayerGraph:
    """A DAG of layer calls. Nodes are layer names (attribute `layer`), edges carry `tensor`."""

    def __init__(
        self,
        name: str,
        inputs: Sequence[TensorInfo],
        outputs: Sequence[str],
        layers: Sequence[Layer],
        tensors: dict[str, TensorInfo],
        source_format: str = "keras",
        source: Any = None,
        notes: Sequence[str] = (),
    ) -> None:
        self.name = name
        # one line per decision the importer took for the user (layout, dynamic dims fixed, ...)
        self.notes: list[str] = list(notes)
        self.inputs = [t.name for t in inputs]
        self.outputs = list(outputs)
        self.tensors = dict(tensors)
        for info in inputs:
            self.tensors[info.name] = info
        self.source_format = source_format
        self.source = source  # the original model object (keras.Model, onnx.ModelProto)
        self.g: nx.DiGraph = nx.DiGraph()
        self._order_hint: dict[str, int] = {}
        self._candidates: list[SplitCandidate] | None = None
        for i, layer in enumerate(layers):
            self._order_hint[layer.name] = i
            self.g.add_node(layer.name, layer=layer)
        producers = {t: layer.name for layer in layers for t in layer.outputs}
        for layer in layers:
            for t in layer.inputs:
                src = producers.get(t)
                if src is not None:
                    if self.g.has_edge(src, layer.name):
                        self.g.edges[src, layer.name]["tensors"].append(t)
                    else:
                        self.g.add_edge(src, layer.name, tensors=[t])

    # -- access -------------------------------------------------------------------------------
    def layer(self, name: str) -> Layer:
        layer: Layer = self.g.nodes[name]["layer"]
        return layer

    def __contains__(self, name: object) -> bool:
        return name in self.g

    def __len__(self) -> int:
        return self.g.number_of_nodes()

    def topological_order(self) -> list[str]:
        """A deterministic topological order: ties broken by the model's own layer order."""
        return list(nx.lexicographical_topological_sort(self.g, key=lambda n: self._order_hint[n]))

    def layers(self) -> Iterator[Layer]:
        for name in self.topological_order():
            yield self.layer(name)

    @property
    def input_elements(self) -> int:
        return sum(self.tensors[t].elements for t in self.inputs)

    @property
    def total_weights(self) -> int:
        return sum({lay.weight_key: lay.weights for lay in self.layers()}.values())

    @property
    def total_macs(self) -> int:
        return sum(lay.macs for lay in self.layers())

    # -- split candidates ----------------------------------------------------------------------
    def split_candidates(self) -> list[SplitCandidate]:
        """Every prefix of the topological order, with its crossing set, weights and peak memory."""
        order = self.topological_order()
        layers = [self.layer(n) for n in order]
        last_use: dict[str, int] = {}  # position of each tensor's last reader
        for i, layer in enumerate(layers):
            for t in layer.inputs:
                last_use[t] = max(last_use.get(t, -1), i)
        produced_at: dict[str, int] = {t: -1 for t in self.inputs}
        for i, layer in enumerate(layers):
            for t in layer.outputs:
                produced_at[t] = i
        outputs = set(self.outputs)

        by_production = sorted(produced_at.items(), key=lambda kv: (kv[1], kv[0]))
        candidates: list[SplitCandidate] = []
        seen_keys: set[str] = set()
        edge_weights = 0
        for k in range(len(order) + 1):
            if k > 0:
                lay = layers[k - 1]
                if lay.weight_key not in seen_keys:
                    seen_keys.add(lay.weight_key)
                    edge_weights += lay.weights
            if k == len(order):
                crossing: list[str] = []
            else:
                crossing = [
                    t
                    for t, p in by_production
                    if p < k and (last_use.get(t, -1) >= k or (t in outputs and p >= 0))
                ]
            crossing_info = tuple(
                CutTensor(t, self.tensors[t].shape, self.tensors[t].elements) for t in crossing
            )
            keep = set(crossing) | (outputs if k == len(order) else set())
            live = self.prefix_intervals(layers[:k], keep)
            peak = int(live.peaks(np.array([self.tensors[t].elements for t in live.tensors])))
            candidates.append(
                SplitCandidate(
                    index=k,
                    edge_layers=tuple(order[:k]),
                    crossing=crossing_info,
                    transmit_elements=sum(c.elements for c in crossing_info),
                    edge_weights=edge_weights,
                    peak_activation_elements=peak,
                )
            )
        return candidates

    def live_sets(self, k: int) -> list[dict[str, int]]:
        """The live tensors (name -> elements) at each step while the edge runs the first k layers.

        A tensor is live from its production (model inputs: from the start) until its last reader in
        the prefix has run; crossing tensors (kept until sent) and, for EDGE-ONLY, the model outputs
        stay live to the end. While a layer runs, its inputs and outputs are live together. The
        planner weighs these sets with per-tensor bits to get the activation memory of a solution.
        """
        return self._live_sets(*self._prefix_keep(k))

    def live_intervals(self, k: int) -> LiveIntervals:
        """`live_sets(k)` as intervals (see LiveIntervals)."""
        return self.prefix_intervals(*self._prefix_keep(k))

    def _prefix_keep(self, k: int) -> tuple[list[Layer], set[str]]:
        """The first k layers and the tensors they keep to the end (crossing; for EDGE-ONLY, the outputs)."""
        order = self.topological_order()
        if not 0 <= k <= len(order):
            raise IndexError(f"split index {k} outside 0..{len(order)}")
        cand = self.split_candidates_cache()[k]
        keep = {c.tensor for c in cand.crossing} | (set(self.outputs) if k == len(order) else set())
        return [self.layer(n) for n in order[:k]], keep

    def split_candidates_cache(self) -> list[SplitCandidate]:
        if self._candidates is None:
            self._candidates = self.split_candidates()
        return self._candidates

    def _live_sets(self, prefix: list[Layer], keep: set[str]) -> list[dict[str, int]]:
        last_in_prefix: dict[str, int] = {}
        for i, layer in enumerate(prefix):
            for t in layer.inputs:
                last_in_prefix[t] = i
        live: dict[str, int] = {t: self.tensors[t].elements for t in self.inputs}
        # an input no layer of the prefix reads and that does not cross is not on the edge at all
        for t in list(live):
            if t not in last_in_prefix and t not in keep:
                del live[t]
        steps: list[dict[str, int]] = []
        for i, layer in enumerate(prefix):
            for t in layer.outputs:
                live[t] = self.tensors[t].elements
            steps.append(dict(live))
            for t in list(live):
                if t not in keep and last_in_prefix.get(t, -1) <= i:
                    del live[t]
        return steps

    def prefix_intervals(self, prefix: Sequence[Layer], keep: set[str]) -> LiveIntervals:
        """The liveness `_live_sets(prefix, keep)` describes, as one interval per tensor on the edge."""
        last_in_prefix: dict[str, int] = {}
        for i, layer in enumerate(prefix):
            for t in layer.inputs:
                last_in_prefix[t] = i
        end = len(prefix) - 1
        spans: dict[str, tuple[int, int]] = {}
        for t in self.inputs:  # an input no layer reads and that does not cross is not on the edge
            if t in keep or t in last_in_prefix:
                spans[t] = (0, end if t in keep else last_in_prefix[t])
        for i, layer in enumerate(prefix):
            for t in layer.outputs:
                spans[t] = (i, end if t in keep else max(i, last_in_prefix.get(t, -1)))
        first = np.array([a for a, _ in spans.values()], dtype=np.int64)
        last = np.array([b for _, b in spans.values()], dtype=np.int64)
        return LiveIntervals(len(prefix), tuple(spans), first, last)

    # -- summary -------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """The `model` and `layers` parts of `splitsdk inspect --json`."""
        return {
            "model": {
                "name": self.name,
                "input_elements": self.input_elements,
                "inputs": [{"tensor": t, "shape": list(self.tensors[t].shape)} for t in self.inputs],
                "outputs": list(self.outputs),
                "format": self.source_format,
                "notes": list(self.notes),
            },
            "layers": [
                {
                    "name": lay.name,
                    "op": lay.op,
                    "output_shape": [list(self.tensors[t].shape) for t in lay.outputs][0]
                    if len(lay.outputs) == 1
                    else [list(self.tensors[t].shape) for t in lay.outputs],
                    "weights": lay.weights,
                    "macs": lay.macs,
                    "activation": lay.activation,
                    "folded": list(lay.folded),
                }
                for lay in self.layers()
            ],
        }
