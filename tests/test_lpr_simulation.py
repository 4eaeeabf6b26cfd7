"""The TQ8 row of Table 3: the planner's fake quantisation of the whole reader, on real test frames."""

from __future__ import annotations

import numpy as np

from splitsdk.examples.lpr import data, weights_path
from splitsdk.examples.lpr.pipeline import float_plates, simulated_plates


def test_uniform_8bit_simulation_reads_like_float_and_2bit_does_not() -> None:
    frames, truth = data.generate(2, 12)
    x = frames.astype(np.float32) / 255.0
    calib = data.generate(0, 8)[0].astype(np.float32) / 255.0
    model = weights_path("small")
    ref = float_plates(model, x)
    q8 = simulated_plates(model, x, calib, 8)
    q2 = simulated_plates(model, x, calib, 2)
    assert sum(a == b for a, b in zip(q8, ref, strict=True)) >= 10  # 8 bits barely changes the reader
    assert sum(a == t for a, t in zip(q2, truth, strict=True)) < sum(a == t for a, t in zip(ref, truth, strict=True))
