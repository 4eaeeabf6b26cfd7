"""The frame-rate model (`splitsdk.plan.traffic`) against closed forms and its seeded simulation, and the
planner with a frame rate, a loss limit, feature compression and JPEG baselines."""

from __future__ import annotations

import math

import numpy as np
import pytest

from splitsdk.errors import PlanError
from splitsdk.plan import PlanMeta, PlanProblem, make_plan
from splitsdk.plan.build import FeatureCompression, TrafficOptions, crossing_codecs, pipeline_stages
from splitsdk.plan.schema import Plan, plan_text
from splitsdk.plan.synthetic import random_problem_parts
from splitsdk.plan.traffic import (
    EDGE_QUEUE_CAPACITY,
    Arrivals,
    knee_fps,
    mg1k,
    predict_queue,
    rates_around_knee,
    simulate,
)
from splitsdk.profile.types import Link

BITS = [2, 4, 8]
N = 20_000
EXPONENTIAL_10MS = -np.log(1.0 - (np.arange(N) + 0.5) / N) * 10.0  # exponential quantiles, mean 10 ms


def mm1k_loss(rho: float, k: int) -> float:
    return 1.0 / (k + 1) if rho == 1.0 else (1 - rho) * rho**k / (1 - rho ** (k + 1))


@pytest.mark.parametrize(("fps", "k"), [(20, 3), (50, 5), (80, 10), (100, 5), (150, 10), (300, 2)])
def test_exponential_service_gives_the_mm1k_closed_form(fps: float, k: int) -> None:
    loss, in_system, busy = mg1k(fps / 1000.0, EXPONENTIAL_10MS, k)
    rho = fps / 100.0
    assert loss == pytest.approx(mm1k_loss(rho, k), abs=2e-4)
    assert busy == pytest.approx(rho * (1 - loss), rel=1e-3)  # the server's busy fraction = throughput x E[S]


@pytest.mark.parametrize("rho", [0.3, 1.0, 2.5])
def test_deterministic_service_matches_the_md1k_closed_forms(rho: float) -> None:
    lam = rho / 10.0  # per ms, service 10 ms
    one = np.array([10.0])
    assert mg1k(lam, one, 1)[0] == pytest.approx(rho / (1 + rho), abs=1e-12)  # Erlang's loss formula
    # K = 2: the embedded chain has pi_0 = a_0 = e^-rho, so the loss is 1 - 1 / (e^-rho + rho)
    assert mg1k(lam, one, 2)[0] == pytest.approx(1 - 1 / (math.exp(-rho) + rho), abs=1e-12)


@pytest.mark.parametrize(("fps", "k"), [(70, 4), (100, 6), (130, 10)])
def test_chain_and_simulation_agree_on_md1k(fps: float, k: int) -> None:
    chain = predict_queue(Arrivals(fps, "poisson"), {"infer": 10.0}, k)
    sim = simulate(Arrivals(fps, "poisson"), [10.0], capacity=k)
    assert sim.loss_ratio == pytest.approx(chain.loss_ratio, abs=0.01)
    assert sim.latency_mean_ms == pytest.approx(chain.latency_mean_ms, rel=0.05)  # Little's law vs observed
    assert chain.latency_p95_ms >= chain.latency_mean_ms >= 10.0


def test_no_load_means_no_loss_and_no_queueing() -> None:
    stages = {"capture": 0.5, "infer": 8.0, "send": [9.0, 10.0, 11.0]}
    for kind in ("periodic", "poisson"):
        q = predict_queue(Arrivals(0.01, kind), stages, 10)  # type: ignore[arg-type]
        assert q.loss_ratio < 1e-9 and q.bottleneck == "send"
        assert q.latency_mean_ms == pytest.approx(0.5 + 8.0 + 10.0, rel=1e-3)
        assert q.throughput_fps == pytest.approx(0.01)


@pytest.mark.parametrize("kind", ["periodic", "poisson"])
def test_loss_and_latency_grow_with_the_frame_rate(kind: str) -> None:
    stages = {"infer": 6.0, "send": [8.0, 10.0, 12.0]}
    preds = [predict_queue(Arrivals(f, kind), stages, 6) for f in (20, 60, 90, 100, 110, 150, 300)]  # type: ignore[arg-type]
    losses = [p.loss_ratio for p in preds]
    assert losses == sorted(losses) and losses[0] < 1e-3 < losses[-1]
    assert all(b.latency_mean_ms >= a.latency_mean_ms - 0.5 for a, b in zip(preds, preds[1:], strict=False))
    assert all(p.throughput_fps <= 1000.0 / 10.0 + 1.0 for p in preds)  # never above the bottleneck's rate


def test_periodic_deterministic_is_exact_below_the_knee_and_saturates_above() -> None:
    stages = {"capture": 1.0, "infer": 4.0, "send": 10.0}
    below = predict_queue(Arrivals(50, "periodic"), stages, 10)
    assert (below.loss_ratio, below.latency_mean_ms, below.latency_p95_ms) == (0.0, 15.0, 15.0)
    assert below.utilisation == pytest.approx(0.5)
    above = predict_queue(Arrivals(125, "periodic"), stages, 10)
    assert above.loss_ratio == pytest.approx(1 - 100 / 125, abs=2e-3)  # the server is busy all the time
    assert above.throughput_fps == pytest.approx(100, rel=1e-2)
    assert above.latency_mean_ms > 9 * 10.0  # a full queue: about K services ahead of each answered frame


def test_capacity_of_the_edge_app_and_the_knee() -> None:
    assert EDGE_QUEUE_CAPACITY(1) == 4 and EDGE_QUEUE_CAPACITY(4) == 10
    assert knee_fps({"infer": 4.0, "send": [8.0, 12.0]}) == pytest.approx(100.0)
    rates = rates_around_knee([100.0], [30.0])
    assert rates == [30.0, 80.0, 95.0, 105.0, 125.0]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: predict_queue(Arrivals(0.0), {"infer": 1.0}, 4), "--fps: must be a positive"),
        (lambda: predict_queue(Arrivals(float("nan")), {"infer": 1.0}, 4), "--fps"),
        (lambda: predict_queue(Arrivals(5.0, "bursty"), {"infer": 1.0}, 4), "--arrivals: 'bursty'"),  # type: ignore[arg-type]
        (lambda: predict_queue(Arrivals(5.0), {"infer": -1.0}, 4), "stages.infer: service times must be"),
        (lambda: predict_queue(Arrivals(5.0), {"send": []}, 4), "stages.send: expected a time"),
        (lambda: predict_queue(Arrivals(5.0), {"infer": 1.0}, 0), "capacity: must be >= 1"),
        (lambda: EDGE_QUEUE_CAPACITY(0), "--queue-depth: must be >= 1"),
        (lambda: TrafficOptions(Arrivals(5.0), max_loss=1.5), "--max-loss: must be a fraction"),
    ],
)
def test_bad_values_are_refused_with_the_field_named(call: object, message: str) -> None:
    with pytest.raises(PlanError, match=message.replace("(", r"\(").replace(".", r"\.")):
        call()  # type: ignore[operator]


# -- the planner with a frame rate -----------------------------------------------------------------------
def _problem(seed: int = 1, uplink: float = 20.0) -> PlanProblem:
    graph, prof, sens = random_problem_parts(seed, 6, BITS)
    return PlanProblem(graph, prof, sens, Link(uplink, 1.0), BITS, 10**6, max_error=5.0)


def _plan(problem: PlanProblem, **kw: object) -> Plan:
    kw.setdefault("exact", None)
    return make_plan(problem, PlanMeta("random", "ab" * 32, target="edge", cloud="cloud"), **kw)  # type: ignore[arg-type]


def test_max_loss_makes_a_loss_heavy_candidate_infeasible() -> None:
    problem = _problem()
    free = _plan(problem)
    knee = knee_fps(pipeline_stages(free.solution.predicted, 0.0))
    fps = knee * 1.15  # the fastest candidate drops about 13% of the frames here
    loaded = _plan(problem, traffic=TrafficOptions(Arrivals(fps), max_loss=0.01), exact="auto")
    t = loaded.traffic
    assert t is not None and t.fps == fps and t.queue_frames == 10
    assert t.solution.feasible and t.solution.loss_ratio <= 0.01
    assert (loaded.solution.split_index, loaded.solution.predicted.total_ms) != (
        free.solution.split_index, free.solution.predicted.total_ms)
    by_latency = {(c.split_index, c.predicted.total_ms): q for c, q in zip(loaded.candidates, t.candidates,
                                                                          strict=True)}
    heavy = by_latency[(free.solution.split_index, free.solution.predicted.total_ms)]
    assert heavy.loss_ratio == pytest.approx(1 - knee / fps, abs=0.01) and not heavy.feasible
    feasible = [q for q in t.candidates if q.feasible]
    assert all(q.loss_ratio <= 0.01 for q in feasible) and all(q.loss_ratio > 0.01 for q in t.candidates
                                                               if not q.feasible)
    # the choice: the lowest latency including queueing among feasible candidates within the error limit
    ok = [q.latency_mean_ms for c, q in zip(loaded.candidates, t.candidates, strict=True)
          if q.feasible and c.predicted.error <= 5.0 * (1 + 1e-7)]
    assert t.solution.latency_mean_ms == pytest.approx(min(ok))
    assert set(t.baselines) == set(loaded.baselines) and loaded.exact is None
    assert any("no exact optimum: the exact solvers do not model the frame rate" in n
               for n in loaded.selection.notes)
    plan_text(loaded)  # the checks a saved plan must pass


def test_an_impossible_loss_limit_is_one_clear_error() -> None:
    with pytest.raises(PlanError, match=r"--max-loss 0: no candidate .* lowest predicted loss"):
        _plan(_problem(), traffic=TrafficOptions(Arrivals(5000.0), max_loss=0.0))


def test_without_a_loss_limit_the_frame_rate_only_ranks() -> None:
    loaded = _plan(_problem(), traffic=TrafficOptions(Arrivals(50.0, "poisson")))
    assert loaded.traffic is not None and loaded.traffic.max_loss is None
    assert all(q.feasible for q in loaded.traffic.candidates)


def _ratios(problem: PlanProblem, ratio: float) -> dict[str, dict[int, float]]:
    tensors = {c.tensor for s in problem.candidates for c in s.crossing}
    return {t: {b: ratio for b in (*BITS, 8)} for t in tensors}


def test_compression_that_pays_cuts_the_bytes_and_costs_edge_time() -> None:
    problem = _problem(uplink=1.0)
    comp = FeatureCompression("auto", _ratios(problem, 0.25), lambda n: n * 1e-6, frames=4, how="test")
    plan = _plan(problem, compression=comp)
    s = plan.solution
    assert s.crossing and all(c.codec == "zstd" and c.compressed_ratio == 0.25 for c in s.crossing)
    raw = sum(math.ceil(math.prod(c.shape) * c.bits / 8) for c in s.crossing)
    assert s.predicted.transmit_bytes == sum(math.ceil(0.25 * math.ceil(math.prod(c.shape) * c.bits / 8))
                                             for c in s.crossing) < raw
    assert any("ratios measured on 4 calibration frames" in n for n in plan.selection.notes)
    plan_text(plan)


def test_auto_leaves_a_crossing_raw_where_compression_does_not_pay() -> None:
    problem = _problem(uplink=1000.0)
    expensive = FeatureCompression("auto", _ratios(problem, 0.9), lambda n: n * 1.0, frames=4)
    forced = FeatureCompression("zstd", _ratios(problem, 0.9), lambda n: n * 1.0, frames=4)
    for k in range(len(problem.candidates)):
        abits = {n: 8 for n in problem.order[:k]}
        assert all(c.codec == "none" for c in crossing_codecs(problem, expensive, k, abits))
        assert all(c.codec == "zstd" for c in crossing_codecs(problem, forced, k, abits))


class _Jpeg:
    def __init__(self, quality: int, nbytes: float) -> None:
        self.quality, self.mean_bytes, self.encode_ms = quality, nbytes, 0.5
        self.agreement: float | None = 97.5
        self.accuracy: float | None = None
        self.source = "bytes measured on 8 frames (test)"


def test_jpeg_options_become_cloud_only_baselines() -> None:
    problem = _problem()
    plan = _plan(problem, jpeg=[_Jpeg(75, 1500.0)], traffic=TrafficOptions(Arrivals(10.0)))
    b = plan.baselines["cloud_only_jpeg_q75"]
    assert b.name == "CLOUD-ONLY+JPEG-Q75" and b.kind == "CLOUD_ONLY" and b.jpeg_quality == 75
    assert b.predicted.transmit_bytes == 1500 and b.predicted.edge_ms == 0.5
    assert b.predicted.transmit_ms == pytest.approx(problem.link.transmit_ms(1500))
    assert b.predicted.accuracy_drop == pytest.approx(2.5) and b.measured_accuracy == 97.5
    assert plan.traffic is not None and "cloud_only_jpeg_q75" in plan.traffic.baselines
    plan_text(plan)
