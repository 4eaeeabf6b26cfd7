"""The planning problem: one graph, its profiles, its sensitivities, a link, a bit set and a memory limit.

Everything the solvers share lives here: the objective (the paper's eq. 1: edge + transmission +
cloud latency), the memory of a bit assignment (weights, each shared set once, plus the peak of the
bit-weighted live sets), and the error proxy (summed weight and activation MSE of the quantised
layers). Algorithm 1, the exact solvers and the baselines all score solutions with `evaluate`, so
their numbers are comparable by construction.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from splitsdk.errors import PlanError
from splitsdk.graph.model import Layer, LayerGraph, SplitCandidate
from splitsdk.profile.types import FLOAT_BITS, LatencyProfile, Link
from splitsdk.quant.types import Sensitivity
from splitsdk.target import ModelFile, QuantSupport

ERROR_RTOL = 1e-7  # relative tolerance of the error-proxy threshold (see PlanProblem.error_limit)
INPUT_BITS = 8  # a camera frame is 8-bit; model inputs are stored and sent at 8 bits


def tensor_bytes(elements: int, bits: int) -> int:
    """Bytes of a tensor of `elements` values packed at `bits` each (float: 32 bits)."""
    return math.ceil(elements * bits / 8)


def edge_latency(graph: LayerGraph, profile: LatencyProfile, name: str, wbits: int, abits: int) -> float:
    """Edge latency of a layer; a layer without weights ignores the weight bits."""
    table = profile.edge.get(name)
    if table is None:
        raise PlanError(f"profile: no edge latency for layer {name!r}")
    key = (wbits, abits) if graph.layer(name).quantizable else (abits, abits)
    if key not in table:
        matches = [v for (_, a), v in sorted(table.items()) if a == abits]
        if graph.layer(name).quantizable or not matches:
            raise PlanError(f"profile.edge[{name!r}]: no latency at weights {wbits}, activations {abits}")
        return matches[0]
    return table[key]


@dataclass(frozen=True)
class Assignment:
    """A solution: split index and the bits of each edge layer (weights by layer; 32 = float)."""

    split_index: int
    weight_bits: tuple[tuple[str, int], ...] = ()
    activation_bits: tuple[tuple[str, int], ...] = ()

    @staticmethod
    def make(split_index: int, wbits: Mapping[str, int], abits: Mapping[str, int]) -> Assignment:
        return Assignment(split_index, tuple(sorted(wbits.items())), tuple(sorted(abits.items())))

    @property
    def wbits(self) -> dict[str, int]:
        return dict(self.weight_bits)

    @property
    def abits(self) -> dict[str, int]:
        return dict(self.activation_bits)


@dataclass(frozen=True)
class Evaluation:
    """The predicted figures of one solution."""

    edge_ms: float
    transmit_ms: float
    cloud_ms: float
    transmit_bytes: int
    edge_weight_bytes: int
    peak_activation_bytes: int
    error: float

    @property
    def total_ms(self) -> float:
        return self.edge_ms + self.transmit_ms + self.cloud_ms

    @property
    def memory_bytes(self) -> int:
        return self.edge_weight_bytes + self.peak_activation_bytes


def weight_set_bytes(layer: Layer, bits: int, storage: Mapping[int, int], model_file: ModelFile | None) -> int:
    """Device bytes of one weight set: the kernel at its storage width, plus, where the runtime's model
    file says so, per-channel biases and quantisation parameters and the layer's records."""
    sbits = storage.get(bits, bits)
    if model_file is None:
        return tensor_bytes(layer.weights, sbits)
    channels = int(layer.attrs.get("filters", 0))
    channels = channels if 0 < channels < layer.weights else 0
    extra = channels * model_file.per_channel_bytes + model_file.per_weighted_layer_bytes
    return tensor_bytes(layer.weights - channels, sbits) + math.ceil(extra)


def fixed_model_bytes(edge_layers: Sequence[Layer], n_outputs: int, model_file: ModelFile | None) -> int:
    """The bit-independent part of an edge model file: weightless layers' records, outputs, header."""
    if model_file is None or not edge_layers:
        return 0
    others = sum(1 for lay in edge_layers if not lay.quantizable)
    return math.ceil(
        model_file.base_bytes + others * model_file.per_layer_bytes + n_outputs * model_file.per_output_bytes
    )


def model_file_bytes(
    layers: Sequence[Layer],
    weight_bits: Mapping[str, int],
    n_outputs: int,
    storage: Mapping[int, int],
    model_file: ModelFile | None,
) -> int:
    """An edge model file of `layers` at `weight_bits` (by layer): each weight set once, plus the records."""
    weight_sets = {lay.weight_key: lay for lay in layers if lay.quantizable}
    return sum(
        weight_set_bytes(lay, weight_bits[lay.name], storage, model_file) for lay in weight_sets.values()
    ) + fixed_model_bytes(layers, n_outputs, model_file)


def activation_container(wbits: int, abits: int) -> int:
    """The width a layer's output really has in an edge model: 8 (int8), 16 (int16x8) or 32 (float,
    including dynamic-range layers, whose outputs are float, and any layer with weights above 8 bits)."""
    if wbits > 8 or abits > 16:
        return FLOAT_BITS
    return 16 if abits > 8 else 8


def precision_mix_bytes(
    graph: LayerGraph,
    edge_layers: Sequence[str],
    crossing: Sequence[str],
    wbits: Mapping[str, int],
    abits: Mapping[str, int],
    model_file: ModelFile | None,
) -> int:
    """What a per-layer precision mix adds to the edge file: a conversion op wherever a layer reads a tensor
    of another width (int8 -> int16 takes two: TFLite 2.14 goes through float), one per sent tensor that is
    not int8, and the int64 biases of 16-bit layers. Zero for a plan at 8 bits or fewer throughout."""
    if model_file is None:
        return 0
    def container(n: str) -> int:  # a layer without weights runs at its activations' width
        return activation_container(wbits.get(n, 8) if graph.layer(n).quantizable else 8, abits[n])

    width = {t: 8 for t in graph.inputs}
    for n in edge_layers:
        for t in graph.layer(n).outputs:
            width[t] = container(n)
    pairs: set[tuple[str, int]] = set()
    for n in edge_layers:
        pairs.update((t, container(n)) for t in graph.layer(n).inputs if t in width and width[t] != container(n))
    ops = sum(2 if (width[t], w) == (8, 16) else 1 for t, w in pairs)
    ops += sum(width.get(t, 8) != 8 for t in crossing)
    wide = sum(int(graph.layer(n).attrs.get("filters", 0)) for n in edge_layers
               if graph.layer(n).quantizable and container(n) == 16)
    return math.ceil(ops * model_file.per_conversion_bytes + wide * model_file.wide_bias_bytes)


def edge_file_bytes(
    graph: LayerGraph,
    edge_layers: Sequence[str],
    weight_bits: Mapping[str, int],
    activation_bits: Mapping[str, int],
    crossing: Sequence[str],
    quant: QuantSupport,
) -> int:
    """The planner's edge-model bytes for a given assignment (weight sets once, the file's records, what a
    precision mix adds): a plan's `edge_weight_bytes`, for checking a hand-edited or mixed solution."""
    storage = {b: quant.storage_bits(b) for b in {*weight_bits.values(), FLOAT_BITS}}
    layers = [graph.layer(n) for n in edge_layers]
    mf = quant.model_file
    return model_file_bytes(layers, weight_bits, len(crossing) or len(graph.outputs), storage, mf) + (
        precision_mix_bytes(graph, edge_layers, crossing, weight_bits, activation_bits, mf)
    )


@dataclass
class PlanProblem:
    """The inputs of a planning run, checked, with per-split facts precomputed.

    `bits` is the candidate set B (e.g. [2, 4, 8]); `memory_bytes` the edge memory M for weights and
    activations; `max_error` the error-proxy threshold (None: no accuracy constraint);
    `storage_bits` maps a width to the bits one value occupies in the device's memory where that
    differs (a TFLite runtime holds 2/4/6-bit values in int8 containers); on the wire every
    tensor is packed to its own width.
    """

    graph: LayerGraph
    profile: LatencyProfile
    sensitivity: Sensitivity
    link: Link
    bits: Sequence[int]
    memory_bytes: int
    max_error: float | None = None
    storage_bits: Mapping[int, int] = field(default_factory=dict)
    model_file: ModelFile | None = None  # the runtime's model file overheads (None: weights alone)
    order: list[str] = field(init=False)
    candidates: list[SplitCandidate] = field(init=False)
    _live: dict[int, list[dict[str, int]]] = field(init=False, default_factory=dict, repr=False)
    _keys: dict[int, dict[str, tuple[int, tuple[str, ...]]]] = field(init=False, default_factory=dict, repr=False)
    _key_users: dict[str, tuple[str, ...]] = field(init=False, default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.memory_bytes <= 0:
            raise PlanError(f"constraints.memory_bytes: must be positive, got {self.memory_bytes}")
        if not self.bits:
            raise PlanError("bits: the candidate bit set is empty")
        bad = [b for b in self.bits if not (isinstance(b, int) and 1 <= b <= 16)]
        if bad:
            raise PlanError(f"bits: candidate widths must be integers in 1..16, got {bad}")
        self.bits = sorted(set(self.bits))
        if self.link.uplink_mbps <= 0:
            raise PlanError(f"link.uplink_mbps: must be positive, got {self.link.uplink_mbps}")
        if self.max_error is not None and self.max_error < 0:
            raise PlanError(f"constraints.max_error: must be >= 0, got {self.max_error}")
        self.order = self.graph.topological_order()
        self.candidates = self.graph.split_candidates()
        for name in self.order:
            layer = self.graph.layer(name)
            if layer.quantizable:
                self._key_users[layer.weight_key] = (*self._key_users.get(layer.weight_key, ()), name)
        self._check_inputs()

    # -- validation ---------------------------------------------------------------------------
    def _check_inputs(self) -> None:
        for name in self.order:
            layer = self.graph.layer(name)
            if name not in self.profile.cloud:
                raise PlanError(f"profile: no cloud latency for layer {name!r}")
            if name not in self.profile.edge:
                raise PlanError(f"profile: no edge latency for layer {name!r}")
            for b in self.bits:
                if b not in self.sensitivity.activations.get(name, {}):
                    raise PlanError(f"sensitivity.activations[{name!r}]: no MSE at {b} bits")
                if layer.quantizable and b not in self._weight_mse_table(name):
                    raise PlanError(f"sensitivity.weights[{name!r}]: no MSE at {b} bits")

    def _weight_mse_table(self, name: str) -> Mapping[int, float]:
        # a shared layer's second call may only be measured under its first call's name (the key)
        table = self.sensitivity.weights.get(name)
        if table is None:
            table = self.sensitivity.weights.get(self.graph.layer(name).weight_key, {})
        return table

    # -- per-layer terms ----------------------------------------------------------------------
    def edge_ms(self, name: str, wbits: int, abits: int) -> float:
        return edge_latency(self.graph, self.profile, name, wbits, abits)

    def weight_mse(self, name: str, bits: int) -> float:
        if bits >= FLOAT_BITS or not self.graph.layer(name).quantizable:
            return 0.0
        return float(self._weight_mse_table(name)[bits])

    def activation_mse(self, name: str, bits: int) -> float:
        if bits >= FLOAT_BITS:
            return 0.0
        return float(self.sensitivity.activations[name][bits])

    def output_elements(self, name: str) -> int:
        return sum(self.graph.tensors[t].elements for t in self.graph.layer(name).outputs)

    @cached_property
    def cloud_suffix_ms(self) -> list[float]:
        """cloud_suffix_ms[k]: cloud latency of the layers after the first k."""
        out = [0.0] * (len(self.order) + 1)
        for k in range(len(self.order) - 1, -1, -1):
            out[k] = out[k + 1] + self.profile.cloud_ms(self.order[k])
        return out

    @cached_property
    def input_bytes(self) -> int:
        """The raw input at 8 bits: what CLOUD-ONLY sends, and the bound of eq. 6."""
        return sum(tensor_bytes(self.graph.tensors[t].elements, INPUT_BITS) for t in self.graph.inputs)

    def weight_keys(self, k: int) -> dict[str, tuple[int, tuple[str, ...]]]:
        """The weight sets on the edge for split k: key -> (weight count, the layers using it)."""
        if k not in self._keys:
            keys: dict[str, tuple[int, tuple[str, ...]]] = {}
            for name in self.order[:k]:
                layer = self.graph.layer(name)
                if layer.quantizable:
                    w, users = keys.get(layer.weight_key, (layer.weights, ()))
                    keys[layer.weight_key] = (w, (*users, name))
            self._keys[k] = keys
        return self._keys[k]

    def live_steps(self, k: int) -> list[dict[str, int]]:
        """The live tensors at each step of the edge prefix of split k (cached)."""
        if k not in self._live:
            self._live[k] = self.graph.live_sets(k)
        return self._live[k]

    # -- the objective ------------------------------------------------------------------------
    def tensor_bits(self, tensor: str, abits: Mapping[str, int]) -> int:
        producer = self.graph.tensors[tensor].producer
        return INPUT_BITS if producer is None else abits[producer]

    def transmit_bytes(self, k: int, abits: Mapping[str, int]) -> int:
        return sum(tensor_bytes(c.elements, self.tensor_bits(c.tensor, abits)) for c in self.candidates[k].crossing)

    def stored_bytes(self, elements: int, bits: int) -> int:
        """Bytes a tensor of `bits`-bit values occupies in the device's memory."""
        return tensor_bytes(elements, self.storage_bits.get(bits, bits))

    def peak_activation_bytes(self, steps: Iterable[Mapping[str, int]], abits: Mapping[str, int]) -> int:
        return max(
            (sum(self.stored_bytes(e, self.tensor_bits(t, abits)) for t, e in step.items()) for step in steps),
            default=0,
        )

    def key_bytes(self, key: str, bits: int) -> int:
        """Bytes the weight set `key` takes on the device at `bits` (its first user stands for all)."""
        users = self._key_users[key]
        return weight_set_bytes(self.graph.layer(users[0]), bits, self.storage_bits, self.model_file)

    def fixed_bytes(self, k: int) -> int:
        """Bit-independent bytes of split k's edge model file (layer records, outputs, header)."""
        if k == 0:
            return 0
        n_out = len(self.candidates[k].crossing) or len(self.graph.outputs)
        return fixed_model_bytes([self.graph.layer(n) for n in self.order[:k]], n_out, self.model_file)

    def weight_bytes(self, k: int, wbits: Mapping[str, int]) -> int:
        return sum(self.key_bytes(key, wbits[users[0]]) for key, (_, users) in self.weight_keys(k).items()) + (
            self.fixed_bytes(k)
        )

    def evaluate(self, a: Assignment) -> Evaluation:
        """Latency (eq. 1), memory and error proxy of an assignment; checks it is complete and consistent."""
        k = a.split_index
        if not 0 <= k <= len(self.order):
            raise PlanError(f"split_index: {k} outside 0..{len(self.order)}")
        wbits, abits = a.wbits, a.abits
        edge = self.order[:k]
        for name in edge:
            if name not in abits:
                raise PlanError(f"activation_bits: no bits for edge layer {name!r}")
            if self.graph.layer(name).quantizable and name not in wbits:
                raise PlanError(f"weight_bits: no bits for edge layer {name!r}")
        for _, users in self.weight_keys(k).values():
            if len({wbits[u] for u in users}) > 1:
                raise PlanError(f"weight_bits: layers {list(users)} share weights but differ in bits")
        edge_ms = sum(self.edge_ms(n, wbits.get(n, abits[n]), abits[n]) for n in edge)
        tx = self.transmit_bytes(k, abits)
        error = sum(self.weight_mse(n, wbits.get(n, FLOAT_BITS)) + self.activation_mse(n, abits[n]) for n in edge)
        return Evaluation(
            edge_ms=edge_ms,
            transmit_ms=self.link.transmit_ms(tx),
            cloud_ms=self.cloud_suffix_ms[k],
            transmit_bytes=tx,
            edge_weight_bytes=self.weight_bytes(k, wbits)
            + precision_mix_bytes(
                self.graph, edge, [c.tensor for c in self.candidates[k].crossing], wbits, abits, self.model_file
            ),
            peak_activation_bytes=self.peak_activation_bytes(self.live_steps(k), abits),
            error=error,
        )

    def uniform(self, k: int, wbits: int, abits: int | None = None) -> Assignment:
        """Every edge layer of split k at `wbits` weights and `abits` (default: same) activations."""
        ab = wbits if abits is None else abits
        edge = self.order[:k]
        w = {n: wbits for n in edge if self.graph.layer(n).quantizable}
        return Assignment.make(k, w, {n: ab for n in edge})

    def feasible(self, ev: Evaluation) -> bool:
        """Within the memory limit and the error-proxy threshold."""
        if ev.memory_bytes > self.memory_bytes:
            return False
        return self.max_error is None or ev.error <= self.error_limit

    @property
    def error_limit(self) -> float:
        """max_error with a relative tolerance of ERROR_RTOL: the proxy is a float sum, and the
        MILP's feasibility tolerance is of that order; every solver compares against this."""
        assert self.max_error is not None
        return self.max_error * (1 + ERROR_RTOL) + 1e-300
