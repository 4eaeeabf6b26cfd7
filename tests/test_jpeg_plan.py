"""CLOUD-ONLY+JPEG as a plan option: with an accuracy limit, the fastest JPEG quality within it becomes the
solution when its modelled latency beats the chosen candidate's (the solution record names the quality and
where its size, accuracy and encode time came from); `jpeg_as_solution=False` / `--no-jpeg-solution` keeps
it a baseline; the plan round-trips and converts into a JPEG bundle."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from splitsdk.plan import Constraints, PlanMeta, PlanProblem, load_plan, make_plan, plan_model, save_plan
from splitsdk.plan.build import ORIGIN_JPEG, TrafficOptions, jpeg_drop
from splitsdk.plan.report import markdown
from splitsdk.plan.schema import Plan, check_plan
from splitsdk.plan.synthetic import random_problem_parts
from splitsdk.plan.traffic import Arrivals
from splitsdk.profile.types import Link

BITS = (2, 4, 8)


@dataclasses.dataclass(frozen=True)
class Option:
    """A measured JPEG option as `splitsdk.plan.jpeg.JpegOption` gives it (the planner reads this protocol)."""

    quality: int
    mean_bytes: float
    encode_ms: float = 0.1
    agreement: float | None = 97.5
    accuracy: float | None = None
    source: str = "bytes: measured on 8 frames (test); encode_ms: modelled (test)"


def _problem(uplink: float = 1.0) -> PlanProblem:
    graph, prof, sens = random_problem_parts(1, 6, BITS)
    return PlanProblem(graph, prof, sens, Link(uplink, 1.0), BITS, 10**6, max_error=5.0)


def _plan(problem: PlanProblem, max_drop: float | None = 5.0, **kw: object) -> Plan:
    meta = PlanMeta("random", "ab" * 32, target="edge", cloud="cloud", max_accuracy_drop=max_drop)
    return make_plan(problem, meta, exact=None, **kw)  # type: ignore[arg-type]


def test_a_fast_jpeg_within_the_limit_is_the_solution_and_says_where_its_figures_came_from(tmp_path: Path) -> None:
    problem = _problem()
    options = [Option(95, 900.0, agreement=99.0), Option(75, 10.0), Option(50, 5.0, agreement=90.0)]
    plan = _plan(problem, jpeg=options)
    s = plan.solution
    assert s.kind == "CLOUD_ONLY" and s.origin == ORIGIN_JPEG and s.edge_layers == ()
    (c,) = s.crossing
    # Q50 is faster but 10 points off; Q75 is within 5 points and beats every split
    assert c.codec == "jpeg" and c.jpeg_quality == 75 and c.bits == 8 and c.producer is None
    assert c.compressed_ratio == pytest.approx(10.0 / np.prod(c.shape))
    b = plan.baselines["cloud_only_jpeg_q75"]
    assert s.predicted == dataclasses.replace(b.predicted) and s.predicted.accuracy_drop == pytest.approx(2.5)
    assert s.predicted.total_ms < _plan(problem, jpeg=options, jpeg_as_solution=False).solution.predicted.total_ms
    assert "quality 75" in s.reason and "measured" in s.reason and "modelled" in s.reason and "<= 5" in s.reason
    assert any("CLOUD-ONLY+JPEG-Q75" in n for n in plan.selection.notes)
    save_plan(plan, tmp_path / "plan.json")
    assert load_plan(tmp_path / "plan.json") == plan
    assert "| AUTO-SPLIT: CLOUD-ONLY+JPEG-Q75 | CLOUD_ONLY | 0 | JPEG Q75 |" in markdown(plan)


@pytest.mark.parametrize(
    ("kw", "why"),
    [
        ({"jpeg_as_solution": False}, "turned off"),
        ({"max_drop": None}, "no accuracy limit: a lossy frame is never chosen"),
        ({"max_drop": 1.0}, "2.5 points off, over the limit"),
        ({"jpeg": [Option(75, 10**7)]}, "slower than the chosen split"),
    ],
)
def test_jpeg_stays_a_baseline(kw: dict[str, object], why: str) -> None:
    kw.setdefault("jpeg", [Option(75, 10.0)])
    plan = _plan(_problem(), **kw)  # type: ignore[arg-type]
    assert all(c.codec != "jpeg" for c in plan.solution.crossing), why
    assert plan.solution.origin != ORIGIN_JPEG and "cloud_only_jpeg_q75" in plan.baselines


def test_with_a_frame_rate_the_queue_record_is_the_jpeg_solutions() -> None:
    plan = _plan(_problem(), jpeg=[Option(75, 10.0)], traffic=TrafficOptions(Arrivals(5.0)))
    assert plan.solution.origin == ORIGIN_JPEG and plan.traffic is not None
    assert plan.traffic.solution == plan.traffic.baselines["cloud_only_jpeg_q75"]


def test_the_schema_refuses_a_jpeg_crossing_that_is_not_a_cloud_only_frame() -> None:
    from splitsdk.codec import CodecError

    plan = _plan(_problem(), jpeg=[Option(75, 10.0)])
    (c,) = plan.solution.crossing
    for bad, field in (
        (dataclasses.replace(c, jpeg_quality=None), "jpeg_quality"),
        (dataclasses.replace(c, codec="none"), "jpeg_quality"),
        (dataclasses.replace(c, bits=4), "codec"),
    ):
        with pytest.raises(CodecError, match=f"solution.crossing\\[0\\].{field}"):
            check_plan(dataclasses.replace(plan, solution=dataclasses.replace(plan.solution, crossing=(bad,))))


def test_jpeg_drop_is_the_label_free_one() -> None:
    assert jpeg_drop(Option(75, 1.0, agreement=96.0)) == pytest.approx(4.0)
    assert jpeg_drop(Option(75, 1.0, agreement=None)) is None


# ---- the real pipeline: measured options, a real model, convert ----


def _model(path: Path) -> Path:
    import keras

    keras.utils.set_random_seed(2)
    inp = keras.Input((24, 32, 3), name="img")
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu", name="c1")(inp)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    keras.Model(inp, keras.layers.Dense(10, activation="softmax", name="fc")(x)).save(path)
    return path


def test_plan_model_chooses_jpeg_where_nothing_fits_on_the_edge_and_convert_makes_its_bundle(tmp_path: Path) -> None:
    from splitsdk.convert import convert_plan
    from splitsdk.wire.bundle import load_bundle

    model = _model(tmp_path / "m.keras")
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[0:24, 0:32]
    frames = np.stack([np.clip((yy * 4 + xx * 3)[..., None] + rng.uniform(0, 60, 3) + rng.normal(0, 4, (24, 32, 3)),
                               0, 255) for _ in range(16)])
    np.savez(tmp_path / "calib.npz", x=(np.rint(frames) / 255.0).astype(np.float32))
    # 100 bytes of edge memory: only CLOUD-ONLY fits, which sends 2304 raw bytes; a JPEG is far smaller
    args = dict(calib=tmp_path / "calib.npz", exact=None, jpeg=(95, 75))
    constraints = Constraints(memory_bytes=100, max_accuracy_drop=20.0)
    off = plan_model(str(model), "cortex-a7", Link(1.0, 10.0), constraints, jpeg_solution=False, **args)
    plan = plan_model(str(model), "cortex-a7", Link(1.0, 10.0), constraints, **args)
    assert off.solution.kind == "CLOUD_ONLY" and off.solution.crossing[0].codec == "none"
    s = plan.solution
    (c,) = s.crossing
    assert s.kind == "CLOUD_ONLY" and c.codec == "jpeg" and c.jpeg_quality in (95, 75)
    assert s.predicted.total_ms < off.solution.predicted.total_ms
    b = plan.baselines[f"cloud_only_jpeg_q{c.jpeg_quality}"]
    assert s.predicted.transmit_bytes == b.predicted.transmit_bytes < 2304
    assert "measured" in s.reason and "jpeg_ns_per_pixel" in s.reason
    save_plan(plan, tmp_path / "plan.json")
    report = convert_plan(tmp_path / "plan.json", model, tmp_path / "bundle", calib=tmp_path / "calib.npz", samples=8)
    assert report.kind == "CLOUD_ONLY" and report.verification is not None
    (mc,) = load_bundle(tmp_path / "bundle").crossing
    assert mc.codec == "jpeg" and mc.jpeg_quality == c.jpeg_quality
