"""CLOUD-ONLY+JPEG options (`splitsdk.plan.jpeg`) on the trained digits classifier, and the camera's encoder.

Only what must hold is asserted: JPEG sizes shrink from Q95 to Q50, the measured agreements and accuracies are
percentages, the encode time is the target's per-pixel figure times the pixels; a model input that is not an
image in the edge app's pixel range gives no options and says why; and libjpeg-turbo cross-compiled from the
target's sysroot, run under qemu-arm, writes JPEGs of Pillow's size for the same frame and settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from benchmark_module import load_benchmark

from splitsdk.errors import DataError, PlanError
from splitsdk.examples.digits import data, weights_path
from splitsdk.graph import load_graph
from splitsdk.graph.model import LayerGraph
from splitsdk.plan.jpeg import encode, jpeg_options, jpeg_unavailable, to_pixels
from splitsdk.target import load_target

import model_zoo

FRAMES = 24


@pytest.fixture(scope="module")
def digits() -> LayerGraph:
    return load_graph(str(weights_path()))


@pytest.fixture(scope="module")
def frames() -> tuple[np.ndarray, np.ndarray]:
    x, y = data.load("test")
    return x[:FRAMES], y[:FRAMES]


def test_sizes_shrink_with_quality_and_the_measures_are_percentages(
    digits: LayerGraph, frames: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = frames
    target = load_target("cortex-a7")
    options = jpeg_options(digits, x, target, (95, 75, 50), labels=y)
    assert [o.quality for o in options] == [95, 75, 50]
    sizes = [o.mean_bytes for o in options]
    assert sizes[0] > sizes[1] > sizes[2] > 0
    for o in options:
        assert o.agreement is not None and 0.0 <= o.agreement <= 100.0
        assert o.accuracy is not None and 0.0 <= o.accuracy <= 100.0
        assert target.device.jpeg_ns_per_pixel is not None
        assert o.encode_ms == pytest.approx(target.device.jpeg_ns_per_pixel * 32 * 32 / 1e6)
        assert "measured" in o.source and "modelled" in o.source and "greyscale" in o.source
    # the sizes are those of the frames' own pixels through the encoder
    pixels = to_pixels(x)
    assert sizes[0] == pytest.approx(np.mean([len(encode(p, 95)) for p in pixels]))


def test_without_labels_there_is_no_accuracy_but_an_agreement(
    digits: LayerGraph, frames: tuple[np.ndarray, np.ndarray]
) -> None:
    (option,) = jpeg_options(digits, frames[0], load_target("cortex-a7"), (75,))
    assert option.accuracy is None and option.agreement is not None
    assert "label-free top-1 agreement" in option.source and "accuracy" not in option.source


def test_a_vector_input_is_not_an_image_and_gives_no_options() -> None:
    graph = load_graph(model_zoo.shared_layer())
    x = np.random.default_rng(0).uniform(0, 1, (4, 4)).astype(np.float32)
    assert jpeg_options(graph, x, load_target("cortex-a7")) == []
    reason = jpeg_unavailable(graph, x)
    assert reason is not None and "not an HWC image" in reason and "\n" not in reason


def test_frames_outside_the_pixel_range_give_no_options_and_name_the_range(
    digits: LayerGraph, frames: tuple[np.ndarray, np.ndarray]
) -> None:
    x = frames[0] * 4.0 - 2.0  # not pixel / 255
    assert jpeg_options(digits, x, load_target("cortex-a7")) == []
    reason = jpeg_unavailable(digits, x)
    assert reason is not None and "[0, 1]" in reason and "--input-scale" in reason
    # the same frames with the scaling that makes them pixels are an image
    assert jpeg_unavailable(digits, x, input_scale=4.0 / 255.0, input_offset=-2.0) is None
    options = jpeg_options(digits, x, load_target("cortex-a7"), (75,), input_scale=4.0 / 255.0, input_offset=-2.0)
    assert len(options) == 1 and options[0].mean_bytes > 0


@pytest.mark.parametrize("quality", [0, 101, 7.5, True])
def test_a_bad_quality_is_refused(digits: LayerGraph, frames: tuple[np.ndarray, np.ndarray],
                                  quality: object) -> None:
    with pytest.raises(PlanError, match="JPEG quality"):
        jpeg_options(digits, frames[0], load_target("cortex-a7"), (quality,))


def test_labels_must_match_the_frames(digits: LayerGraph, frames: tuple[np.ndarray, np.ndarray]) -> None:
    with pytest.raises(DataError, match="labels"):
        jpeg_options(digits, frames[0], load_target("cortex-a7"), (75,), labels=frames[1][:3])


@pytest.mark.requires_toolchain
@pytest.mark.requires_qemu
def test_the_targets_libjpeg_turbo_under_qemu_writes_pillows_size(tmp_path: Path) -> None:
    from splitsdk.examples.lpr import data as lpr

    bench = load_benchmark("bench_jpeg")
    enc = bench.build_encoder(load_target("cortex-a7"), tmp_path)
    frames = {"rgb": lpr.generate(2, 1)[0], "grey": to_pixels(data.load("test")[0][:1])}
    for name, pixels in frames.items():
        raw = bench.write_raw(pixels, tmp_path / f"{name}.raw")
        for q in (95, 50):
            first = tmp_path / f"{name}-{q}.jpg"
            run = bench.run_encoder(enc, raw, tuple(pixels.shape[1:]), q, 1, first=first)
            pillow = encode(pixels[0], q)
            assert run.sizes == [first.stat().st_size]
            assert run.sizes[0] == pytest.approx(len(pillow), rel=0.03), (name, q)
            assert run.insns > 0


def test_a_target_without_a_jpeg_figure_uses_the_measured_cortex_a7_fallback() -> None:
    from splitsdk.plan.jpeg import FALLBACK_JPEG_NS_PER_PIXEL, jpeg_ns_per_pixel

    ns, where = jpeg_ns_per_pixel(load_target("eyeriss"))
    assert ns == FALLBACK_JPEG_NS_PER_PIXEL and "fallback" in where
    ns, where = jpeg_ns_per_pixel(load_target("cortex-a7"))
    assert ns == load_target("cortex-a7").device.jpeg_ns_per_pixel and where == "cortex-a7 jpeg_ns_per_pixel"
