"""Cut a model into an edge sub-model (inputs -> every crossing tensor) and a cloud sub-model.

Both are rebuilt from the optimised LayerGraph (BN folded, activations fused), so the pair computes
exactly what the planner analysed. Sub-8-bit weights are fake-quantised on their grid in a copy of
the edge layers (emulation on the int8 container, `splitsdk.quant.grid`), never in the user's model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from splitsdk.errors import PlanError
from splitsdk.graph import LayerGraph, build_keras
from splitsdk.quant import CONTAINER_BITS, fake_quantize_keras


def edge_model(
    graph: LayerGraph,
    edge_layers: list[str],
    crossing: list[str],
    name: str = "edge",
    transform: Callable[[str, Any], Any] | None = None,
    from_tensors: list[str] | None = None,
) -> Any:
    """inputs -> crossing tensors. A crossing model input passes through an Identity layer.
    `transform(tensor, value)` may wrap every tensor, the inputs included (e.g. in a fake quantiser).
    `from_tensors`: the tensors it starts from (default the graph's inputs; a chain segment: the previous cut's)."""
    import keras

    starts = graph.inputs if from_tensors is None else from_tensors
    needed_inputs = [t for t in starts if _reads(graph, edge_layers, t) or t in crossing]
    inputs = {t: keras.Input(shape=graph.tensors[t].shape, name=f"{_safe(t)}_in") for t in needed_inputs}
    from splitsdk.graph import run_layers

    feeds = {t: v if transform is None else transform(t, v) for t, v in inputs.items()}
    values = run_layers(graph, feeds, edge_layers, transform=transform)
    outs = []
    for t in crossing:
        v = values[t]
        if t in inputs:
            v = passthrough(v, f"pass_{_safe(t)}")
        outs.append(v)
    model = keras.Model([inputs[t] for t in needed_inputs], outs, name=name)
    return _copy(model)


def edge_with_probe(graph: LayerGraph, edge_layers: list[str], crossing: list[str]) -> tuple[Any, Any]:
    """The edge model and a probe that shares its layers (and weights): one output per edge layer."""
    import keras

    layer_out = [graph.layer(n).outputs[0] for n in edge_layers]
    extra = [t for t in dict.fromkeys(layer_out) if t not in crossing]
    full = edge_model(graph, edge_layers, crossing + extra)
    by_tensor = dict(zip(crossing + extra, full.outputs, strict=True))
    edge = keras.Model(full.inputs, full.outputs[: len(crossing)], name="edge")
    probe = keras.Model(full.inputs, [by_tensor[t] for t in layer_out], name="probe")
    return edge, probe


def passthrough(x: Any, name: str) -> Any:
    """An identity the converter keeps, so a crossing model input leaves the edge model quantised to int8
    (a plain Identity, or a ReLU with slope 1, is pruned and leaves a float output). For an image a 1x1
    max pooling: one int8 op after the input's QUANTIZE. Otherwise a ReLU with a slope of 1 on both sides
    and a huge cap, which survives as a few elementwise ops."""
    import keras

    if len(x.shape) == 4:
        return keras.layers.MaxPooling2D(pool_size=1, strides=1, name=name)(x)
    return keras.layers.ReLU(max_value=1e9, negative_slope=1.0, name=name)(x)


def input_quantizer(shape: tuple[int, ...], name: str = "edge") -> Any:
    """The edge model of a CLOUD-ONLY plan: the frame in, the frame out as int8 after conversion."""
    import keras

    x = keras.Input(shape=shape, name="frame_in")
    return keras.Model(x, passthrough(x, "pass_frame"), name=name)


def cloud_model(graph: LayerGraph, crossing: list[str], edge_layers: list[str], name: str = "cloud") -> Any:
    """One input per crossing tensor (wire order) -> the original outputs, in float."""
    import keras

    cloud_layers = [n for n in graph.topological_order() if n not in set(edge_layers)]
    if not cloud_layers:  # EDGE-ONLY: the results cross; the cloud passes them through
        ins = [keras.Input(shape=graph.tensors[t].shape, name=f"{_safe(t)}_in") for t in crossing]
        outs = [keras.layers.Identity(name=f"result_{i}")(x) for i, x in enumerate(ins)]
        return keras.Model(ins, outs, name=name)
    return _copy(build_keras(graph, inputs=crossing, outputs=graph.outputs, layers=cloud_layers, name=name))


def fake_quantize_weights(
    model: Any, weight_bits: dict[str, int], graph: LayerGraph, container: bool = False
) -> list[str]:
    """Put the kernels of layers with fewer than 8 weight bits (with `container`, 8 too: what the runtime
    itself rounds) on the grid they ship on (`splitsdk.quant.quantize_weights`: per output channel,
    sub-8-bit grids as the int8 container holds them). Returns those layers."""
    emulated = []
    by_name = {layer.name: layer for layer in model.layers}
    for gname, bits in sorted(weight_bits.items()):
        if bits > CONTAINER_BITS or (bits == CONTAINER_BITS and not container):
            continue
        layer = by_name.get(_keras_name(graph, gname))
        if layer is None:
            raise PlanError(f"plan: weight_bits names layer {gname!r}, which the edge model does not hold")
        layer.set_weights(fake_quantize_keras(layer, bits))
        emulated.append(gname)
    return emulated


def _keras_name(graph: LayerGraph, layer_name: str) -> str:
    call = graph.layer(layer_name).source
    op = getattr(call, "replacement", None) or getattr(call, "op", None)
    return str(op.name) if op is not None else layer_name


def _reads(graph: LayerGraph, layers: list[str], tensor: str) -> bool:
    return any(tensor in graph.layer(n).inputs for n in layers)


def _copy(model: Any) -> Any:
    """A model with its own layers and weights (sub-models must not share state with the user's model)."""
    import keras

    # from_config keeps shared layers shared (clone_model would duplicate a layer called twice)
    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    return clone


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in name)
