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

import numpy as np

from splitsdk.errors import PlanError
from splitsdk.graph.model import Layer, LayerGraph, LiveIntervals, SplitCandidate
from splitsdk.profile.types import FLOAT_BITS, LatencyProfile, Link
from splitsdk.quant.types import Sensitivity
from splitsdk.target import ModelFile, QuantSupport

ERROR_RTOL = 1e-7  # relative tolerance of the error-proxy threshold (see PlanProblem.error_limit)
INPUT_BITS = 8  # a camera frame is 8-bit; model inputs are stored and sent at 8 bits
WIRE_MAX_BITS = 8  # the edge model's outputs are int8: a crossing tensor is sent at <= 8 bits whatever its producer


def wire_bytes(elements: int, bits: int) -> int:
    """Bytes a crossing tensor produced at `bits` takes on the wire (sent at no more than WIRE_MAX_BITS)."""
    return tensor_bytes(elements, min(bits, WIRE_MAX_BITS))


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


def weight_set_parts(layer: Layer) -> tuple[int, int, int, int]:
    """How the runtime's file holds a weight set: (kernel values, bias values, output channels with
    quantisation parameters, runtime ops). A separable conv is a depthwise op with channels of its
    own, then a 1x1 op; a bias of zeros is stored once per length, so not priced; a layer whose
    importer gave no kernel size keeps one bias per output channel."""
    if layer.attrs.get("folds_into"):  # a batch norm the converter folds into the conv before: its offsets
        return 0, layer.weights // 2, 0, 0
    filters = int(layer.attrs.get("filters", 0))
    kernel = layer.attrs.get("kernel_elements")
    if kernel is None:
        channels = filters if 0 < filters < layer.weights else 0
        return layer.weights - channels, channels, channels, 1
    kernel = min(int(kernel), layer.weights)
    biases = 0 if layer.attrs.get("zero_bias") else layer.weights - kernel  # zeros: one shared buffer per length
    depthwise = int(layer.attrs.get("depthwise_channels", 0))
    return kernel, biases, filters + depthwise, 2 if depthwise else 1


def weight_set_bytes(layer: Layer, bits: int, storage: Mapping[int, int], model_file: ModelFile | None) -> int:
    """Device bytes of one weight set: the kernel at its storage width, plus, where the runtime's model
    file says so, the biases, the per-channel quantisation parameters and the layer's records."""
    sbits = storage.get(bits, bits)
    if model_file is None:
        return tensor_bytes(layer.weights, sbits)
    kernel, biases, channels, ops = weight_set_parts(layer)
    if not model_file.bias_value_bytes:  # biases at the weights' width
        kernel, biases = kernel + biases, 0
    extra = (biases * model_file.bias_value_bytes + channels * model_file.per_channel_bytes
             + ops * model_file.per_weighted_layer_bytes)
    return tensor_bytes(kernel, sbits) + math.ceil(extra)


# ops of an activation fused into a layer: TFLite fuses relu and relu6 into the op; swish is LOGISTIC + MUL; others one
_ACTIVATION_OPS = {"relu": 0, "relu6": 0, "linear": 0, "swish": 2, "silu": 2}


def other_ops(layer: Layer) -> int:
    """Runtime ops without weights a layer adds to the file: a weightless layer's own, and the ops of an
    activation fused into it that the runtime does not fuse."""
    act = _ACTIVATION_OPS.get(layer.activation, 1) if layer.activation else 0
    return act + (0 if layer.quantizable else 1)


def fixed_model_bytes(edge_layers: Sequence[Layer], n_outputs: int, model_file: ModelFile | None) -> int:
    """The bit-independent part of an edge model file: weightless ops' records, outputs, header."""
    if model_file is None or not edge_layers:
        return 0
    others = sum(other_ops(lay) for lay in edge_layers)
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


@dataclass(frozen=True)
class LayerTables:
    """Per-layer facts of a problem as arrays, layers in `PlanProblem.order`, widths as positions in
    `PlanProblem.bits` (a solver working in positions never looks a layer up by name)."""

    widths: np.ndarray  # PlanProblem.bits
    pairs: np.ndarray  # layer x width: the (layer, bits) tuple an Assignment holds (made once, shared)
    position: dict[str, int]  # layer -> its position in the order
    key_of: np.ndarray  # per layer: its weight set's position in `keys`, -1 without weights
    keys: tuple[str, ...]  # weight sets by first use
    key_bytes: np.ndarray  # weight set x width: bytes on the device
    edge_ms: np.ndarray  # layer x weight width x activation width (NaN: not in the profile)
    weight_mse: np.ndarray  # layer x width (0 without weights)
    activation_mse: np.ndarray  # layer x width


@dataclass(frozen=True)
class SplitFacts:
    """Split k's facts as arrays over the width positions, for evaluating many assignments at once."""

    k: int
    live: LiveIntervals
    producer: np.ndarray  # per live tensor: its producer's position (a model input: 0, any will do)
    sizes: np.ndarray  # live tensor x width: bytes stored (a model input: at INPUT_BITS in every column)
    cross_producer: np.ndarray  # per crossing tensor, as `producer`
    cross_bytes: np.ndarray  # crossing tensor x width: bytes sent
    n_keys: int  # the weight sets on the edge are the first n_keys of LayerTables.keys
    fixed_bytes: int
    activation_names: tuple[str, ...]  # the edge layers by name (Assignment's order) ...
    activation_order: np.ndarray  # ... and their positions
    weight_names: tuple[str, ...]  # the edge layers with weights by name ...
    weight_layers: np.ndarray  # ... their positions ...
    weight_keys: np.ndarray  # ... and their weight sets' positions


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
    layers: list[Layer] = field(init=False, repr=False)  # the layers of `order`
    candidates: list[SplitCandidate] = field(init=False)
    _live: dict[int, list[dict[str, int]]] = field(init=False, default_factory=dict, repr=False)
    _keys: dict[int, dict[str, tuple[int, tuple[str, ...]]]] = field(init=False, default_factory=dict, repr=False)
    _key_users: dict[str, tuple[str, ...]] = field(init=False, default_factory=dict, repr=False)
    _facts: dict[int, SplitFacts] = field(init=False, default_factory=dict, repr=False)
    _sizes: dict[tuple[str, bool], list[int]] = field(init=False, default_factory=dict, repr=False)

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
        self.layers = [self.graph.layer(name) for name in self.order]
        self.candidates = self.graph.split_candidates()
        for name, layer in zip(self.order, self.layers, strict=True):
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
            for layer in self.layers[:k]:
                if layer.quantizable:
                    w, users = keys.get(layer.weight_key, (layer.weights, ()))
                    keys[layer.weight_key] = (w, (*users, layer.name))
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

    def wire_bits(self, tensor: str, abits: Mapping[str, int]) -> int:
        """The bits a crossing tensor is sent at: its producer's, capped at the int8 edge output."""
        return min(self.tensor_bits(tensor, abits), WIRE_MAX_BITS)

    def transmit_bytes(self, k: int, abits: Mapping[str, int]) -> int:
        return sum(wire_bytes(c.elements, self.tensor_bits(c.tensor, abits)) for c in self.candidates[k].crossing)

    def stored_bytes(self, elements: int, bits: int) -> int:
        """Bytes a tensor of `bits`-bit values occupies in the device's memory."""
        return tensor_bytes(elements, self.storage_bits.get(bits, bits))

    def peak_activation_bytes(self, steps: Iterable[Mapping[str, int]], abits: Mapping[str, int]) -> int:
        """The peak of the bit-weighted live sets `steps`, step by step: the plain definition, kept as the
        reference the vectorised `peak_bytes` is tested against (and for callers holding live sets)."""
        return max(
            (sum(self.stored_bytes(e, self.tensor_bits(t, abits)) for t, e in step.items()) for step in steps),
            default=0,
        )

    def peak_bytes(self, k: int, abits: Mapping[str, int]) -> int:
        """Peak activation bytes of split k's edge prefix at `abits` (any widths), over its live intervals."""
        live = self.split_facts(k).live
        sizes = [self.stored_bytes(self.graph.tensors[t].elements, self.tensor_bits(t, abits)) for t in live.tensors]
        return int(live.peaks(np.array(sizes, dtype=np.int64)))

    @cached_property
    def tables(self) -> LayerTables:
        """The per-layer arrays (built on first use)."""
        bits, n = self.bits, len(self.order)
        keys = tuple(self._key_users)
        key_pos = {key: i for i, key in enumerate(keys)}
        layers = self.layers
        pairs = np.empty((n, len(bits)), dtype=object)
        pairs[:] = [[(name, b) for b in bits] for name in self.order]
        edge_ms = np.full((n, len(bits), len(bits)), np.nan)
        for i, name in enumerate(self.order):
            for w, wb in enumerate(bits):
                for a, ab in enumerate(bits):
                    try:
                        edge_ms[i, w, a] = self.edge_ms(name, wb, ab)
                    except PlanError:  # raised again by `evaluate` if a solution uses it
                        pass
        return LayerTables(
            widths=np.array(bits, dtype=np.int64),
            pairs=pairs,
            position={name: i for i, name in enumerate(self.order)},
            key_of=np.array([key_pos[lay.weight_key] if lay.quantizable else -1 for lay in layers], dtype=np.int64),
            keys=keys,
            key_bytes=np.array([[self.key_bytes(key, b) for b in bits] for key in keys], dtype=np.int64).reshape(
                len(keys), len(bits)
            ),
            edge_ms=edge_ms,
            weight_mse=np.array([[self.weight_mse(name, b) for b in bits] for name in self.order]),
            activation_mse=np.array([[self.activation_mse(name, b) for b in bits] for name in self.order]),
        )

    def split_facts(self, k: int) -> SplitFacts:
        """Split k's arrays (cached)."""
        if k not in self._facts:
            self._facts[k] = self._split_facts(k)
        return self._facts[k]

    def _split_facts(self, k: int) -> SplitFacts:
        tab, graph = self.tables, self.graph
        prefix = self.layers[:k]
        crossing = [c.tensor for c in self.candidates[k].crossing]
        keep = set(crossing) | (set(graph.outputs) if k == len(self.order) else set())
        live = graph.prefix_intervals(prefix, keep)

        def producers(tensors: Sequence[str]) -> np.ndarray:
            prod = [graph.tensors[t].producer for t in tensors]
            return np.array([0 if p is None else tab.position[p] for p in prod], dtype=np.int64)

        def per_width(tensors: Sequence[str], stored: bool) -> np.ndarray:
            rows = [self._tensor_sizes(t, stored) for t in tensors]
            return np.array(rows, dtype=np.int64).reshape(len(tensors), len(self.bits))

        names = sorted(self.order[:k])
        wnames = [n for n in names if self.layers[tab.position[n]].quantizable]
        return SplitFacts(
            k=k,
            live=live,
            producer=producers(live.tensors),
            sizes=per_width(live.tensors, stored=True),
            cross_producer=producers(crossing),
            cross_bytes=per_width(crossing, stored=False),
            n_keys=len(self.weight_keys(k)),
            fixed_bytes=self.fixed_bytes(k),
            activation_names=tuple(names),
            activation_order=np.array([tab.position[n] for n in names], dtype=np.int64),
            weight_names=tuple(wnames),
            weight_layers=np.array([tab.position[n] for n in wnames], dtype=np.int64),
            weight_keys=np.array([tab.key_of[tab.position[n]] for n in wnames], dtype=np.int64),
        )

    def assignment_at(self, k: int, key_pos: np.ndarray, act_pos: np.ndarray) -> Assignment:
        """The Assignment of split k with width positions `key_pos` (by weight set) and `act_pos` (by layer)."""
        return Assignment(k, self.weight_bits_at(k, key_pos), self.activation_bits_at(k, act_pos))

    def weight_bits_at(self, k: int, key_pos: np.ndarray) -> tuple[tuple[str, int], ...]:
        """Assignment.weight_bits of split k with width positions `key_pos` (by weight set)."""
        f = self.split_facts(k)
        return tuple(self.tables.pairs[f.weight_layers, key_pos[f.weight_keys]].tolist())

    def activation_bits_at(self, k: int, act_pos: np.ndarray) -> tuple[tuple[str, int], ...]:
        """Assignment.activation_bits of split k with width positions `act_pos` (by layer)."""
        f = self.split_facts(k)
        return tuple(self.tables.pairs[f.activation_order, act_pos[f.activation_order]].tolist())

    def evaluate_positions(self, k: int, key_pos: np.ndarray, act_pos: np.ndarray) -> list[Evaluation]:
        """`evaluate` of P assignments of split k >= 1 given as width positions (`key_pos`: P x weight sets
        on the edge, `act_pos`: P x edge layers), computed as arrays: the same figures, the same errors."""
        f, tab = self.split_facts(k), self.tables
        layers = np.arange(k)
        key_of = tab.key_of[:k]
        wpos = np.where(key_of >= 0, key_pos[:, np.maximum(key_of, 0)], act_pos) if f.n_keys else act_pos
        ms = tab.edge_ms[layers, wpos, act_pos]
        errors = (tab.weight_mse[layers, wpos] + tab.activation_mse[layers, act_pos]).tolist()
        tx = f.cross_bytes[np.arange(len(f.cross_producer)), act_pos[:, f.cross_producer]].sum(axis=1).tolist()
        wbytes = (tab.key_bytes[np.arange(f.n_keys), key_pos].sum(axis=1) + f.fixed_bytes).tolist()
        peaks = f.live.peaks(f.sizes[np.arange(len(f.producer)), act_pos[:, f.producer]]).tolist()
        missing = np.isnan(ms).any(axis=1).tolist()
        crossing = [c.tensor for c in self.candidates[k].crossing]
        out = []
        for p, row_ms in enumerate(ms.tolist()):
            if missing[p]:  # a latency the profile lacks: `evaluate` names it
                out.append(self.evaluate(self.assignment_at(k, key_pos[p], act_pos[p])))
                continue
            mix = 0
            if self.model_file is not None and max(self.bits) > 8:  # at <= 8 bits every container is int8: 0
                a = self.assignment_at(k, key_pos[p], act_pos[p])
                mix = precision_mix_bytes(self.graph, self.order[:k], crossing, a.wbits, a.abits, self.model_file)
            out.append(
                Evaluation(
                    edge_ms=sum(row_ms),
                    transmit_ms=self.link.transmit_ms(tx[p]),
                    cloud_ms=self.cloud_suffix_ms[k],
                    transmit_bytes=tx[p],
                    edge_weight_bytes=wbytes[p] + mix,
                    peak_activation_bytes=peaks[p],
                    error=sum(errors[p]),
                )
            )
        return out

    def _tensor_sizes(self, tensor: str, stored: bool) -> list[int]:
        """A tensor's bytes at each candidate width (a model input: at INPUT_BITS), in the device's memory
        (`stored`) or on the wire; cached."""
        if (tensor, stored) not in self._sizes:
            info = self.graph.tensors[tensor]
            size = self.stored_bytes if stored else wire_bytes
            self._sizes[tensor, stored] = [
                size(info.elements, INPUT_BITS if info.producer is None else b) for b in self.bits
            ]
        return self._sizes[tensor, stored]

    def key_bytes(self, key: str, bits: int) -> int:
        """Bytes the weight set `key` takes on the device at `bits` (its first user stands for all)."""
        users = self._key_users[key]
        return weight_set_bytes(self.graph.layer(users[0]), bits, self.storage_bits, self.model_file)

    def fixed_bytes(self, k: int) -> int:
        """Bit-independent bytes of split k's edge model file (layer records, outputs, header)."""
        if k == 0:
            return 0
        n_out = len(self.candidates[k].crossing) or len(self.graph.outputs)
        return fixed_model_bytes(self.layers[:k], n_out, self.model_file)

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
            peak_activation_bytes=self.peak_bytes(k, abits),
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
