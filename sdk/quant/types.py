"""The sensitivity contract the planner reads."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Sensitivity:
    """MSE against float of each layer's weights and output activation at each candidate bit width.

    `weights[layer][bits]`: the layer's (folded) kernels quantised as convert ships them
    (`splitsdk.quant.grid.quantize_weights`, per output channel); 0 for a layer with only vectors.
    `activations[layer][bits]`: the layer's output quantised over its calibrated range.
    Layers without weights have no `weights` entry. `bits` lists the candidate widths measured.
    `synthetic_data` is True when no calibration data was given and random inputs were used.
    """

    bits: list[int]
    weights: dict[str, dict[int, float]] = field(default_factory=dict)
    activations: dict[str, dict[int, float]] = field(default_factory=dict)
    model_sha256: str = ""
    data_sha256: str = ""
    samples: int = 0
    synthetic_data: bool = False
