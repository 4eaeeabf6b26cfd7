"""A camera's frame rate through the edge app's bounded pipeline: throughput, loss ratio and latency.

The edge app runs capture -> infer (+ pack, compress) -> send in three threads joined by bounded queues
(`--queue-depth`); a live source drops a frame when the first queue is full. `predict_queue` models that
pipeline as a single-server queue of finite capacity K (`EDGE_QUEUE_CAPACITY`) whose service time is the
bottleneck stage's (the stage with the largest mean); the other stages add their service time to the
latency. Latency is capture to RESULT, queueing included.

* Poisson arrivals (M/G/1/K): the exact embedded Markov chain at departures, a_k = P(k arrivals in one
  service time) = E[e^{-lambda S} (lambda S)^k / k!] over the service samples (or one deterministic time).
  Its stationary distribution pi gives the time-average one, p_j = pi_j / (pi_0 + rho) for j < K and
  p_K = 1 - 1 / (pi_0 + rho) (rho = lambda E[S]); by PASTA the loss ratio (blocking probability) is p_K,
  the throughput fps (1 - p_K), the mean sojourn L / (lambda (1 - p_K)) by Little's law. The 95th
  percentile comes from a bounded seeded simulation (`simulate`), since the chain gives no tail.
* Periodic arrivals (D/G/1/K): with deterministic service no longer than the period nothing ever waits
  (exact: no loss, latency the sum of the stages). With deterministic service s longer than the period T the
  server never idles once the queue is full: throughput 1/s and loss 1 - T/s exactly, and an accepted frame
  finds K - 1 ahead of it, the one in service ending within (s - T, s]: latency K s - T/2 (within T/2; p95
  K s - T/20). Otherwise a bounded seeded discrete-event simulation.

References. Gross, Shortle, Thompson, Harris, *Fundamentals of Queueing Theory*, M/G/1/K via the embedded
chain. The issue points at the ICPE 2024 keynote on edge-AI performance (G. Casale) for an M/G/1/K
loss-ratio approximation; its text was not found, and the closest published work of the same group found,
CEED (Chen, Niu, Roveri, Casale, INFOCOM 2025), predicts the loss ratio of finite-memory edge devices with
a learned predictor. This module uses the exact chain instead, which needs no training and is checked
against the closed forms (M/M/1/K) and the simulation in the tests and `benchmarks/bench_traffic_model.py`.

Simplification, said once: only the bottleneck queues. When two stages are close, the real tandem waits a
little at the other one too; the edge-app verification measures the difference.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, Literal, get_args

import numpy as np

from splitsdk.errors import PlanError

ArrivalKind = Literal["periodic", "poisson"]
ARRIVAL_KINDS: tuple[str, ...] = get_args(ArrivalKind)
SIM_FRAMES: Final = 20_000  # arrivals per simulation: bounded work, a p95 within about 1% on the tests' cases
SIM_WARMUP: Final = 0.1  # the first tenth of a simulation is not counted (the queue starts empty)
SIM_SEED: Final = 0


def EDGE_QUEUE_CAPACITY(queue_depth: int) -> int:  # noqa: N802 (the interface's name)
    """Frames the edge app holds with `--queue-depth N`: the capture queue (N), infer's frame in hand (1),
    the send queue (N) and the frame being sent and answered (1)."""
    if queue_depth < 1:
        raise PlanError(f"--queue-depth: must be >= 1, got {queue_depth}")
    return 2 * queue_depth + 2


@dataclass(frozen=True)
class Arrivals:
    """Frames per second and how they arrive: a camera's fixed period, or Poisson (an event-triggered source)."""

    fps: float
    kind: ArrivalKind = "periodic"


@dataclass(frozen=True)
class QueuePrediction:
    """What a frame rate does to a pipeline (modelled)."""

    throughput_fps: float  # frames answered per second
    loss_ratio: float  # frames dropped / frames captured
    latency_mean_ms: float  # capture to RESULT, queueing included, over answered frames
    latency_p95_ms: float
    utilisation: float  # busy fraction of the bottleneck stage
    bottleneck: str  # the stage with the largest mean service time


def _samples(name: str, value: Sequence[float] | float) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if arr.ndim != 1 or arr.size == 0:
        raise PlanError(f"stages.{name}: expected a time in ms or a non-empty list of them")
    if not np.isfinite(arr).all() or (arr < 0).any():
        raise PlanError(f"stages.{name}: service times must be finite and >= 0 ms")
    return arr


def _check(arrivals: Arrivals, capacity: int) -> None:
    if not (math.isfinite(arrivals.fps) and arrivals.fps > 0):
        raise PlanError(f"--fps: must be a positive number of frames per second, got {arrivals.fps}")
    if arrivals.kind not in ARRIVAL_KINDS:
        raise PlanError(f"--arrivals: {arrivals.kind!r} is not one of {', '.join(ARRIVAL_KINDS)}")
    if capacity < 1:
        raise PlanError(f"capacity: must be >= 1 frame, got {capacity}")


def predict_queue(arrivals: Arrivals, stages: Mapping[str, Sequence[float] | float], capacity: int) -> QueuePrediction:
    """Throughput, loss ratio, mean and p95 latency of `stages` (service times in ms: a number, deterministic,
    or samples of the measured distribution) fed at `arrivals`, holding at most `capacity` frames."""
    _check(arrivals, capacity)
    if not stages:
        raise PlanError("stages: at least one stage is needed")
    named = {name: _samples(name, v) for name, v in stages.items()}
    bottleneck = max(named, key=lambda n: (float(named[n].mean()), n))
    service = named[bottleneck]
    others = tuple(tuple(v.tolist()) for n, v in sorted(named.items()) if n != bottleneck)
    return _predict(arrivals.fps, arrivals.kind, tuple(service.tolist()), others, capacity, bottleneck, True)


def loss_and_latency(arrivals: Arrivals, stages: Mapping[str, Sequence[float] | float],
                     capacity: int) -> tuple[float, float]:
    """`predict_queue`'s loss ratio and mean latency alone (no p95: for Poisson arrivals no simulation), for
    ranking many candidates."""
    _check(arrivals, capacity)
    named = {name: _samples(name, v) for name, v in stages.items()}
    bottleneck = max(named, key=lambda n: (float(named[n].mean()), n))
    others = tuple(tuple(v.tolist()) for n, v in sorted(named.items()) if n != bottleneck)
    q = _predict(arrivals.fps, arrivals.kind, tuple(named[bottleneck].tolist()), others, capacity, bottleneck,
                 False)
    return q.loss_ratio, q.latency_mean_ms


@lru_cache(maxsize=4096)
def _predict(fps: float, kind: str, service: tuple[float, ...], others: tuple[tuple[float, ...], ...],
             capacity: int, bottleneck: str, tail: bool) -> QueuePrediction:
    rest_mean = sum(float(np.mean(o)) for o in others)
    s = np.asarray(service)
    if float(s.max()) <= 0.0:  # nothing to queue for
        rest = [float(np.mean(o)) for o in others]
        return QueuePrediction(fps, 0.0, sum(rest), _p95_of_sum(others), 0.0, bottleneck)
    if kind == "periodic":
        period = 1000.0 / fps
        if all(len(set(o)) == 1 for o in others) and len(set(service)) == 1:
            one = float(s[0])
            if one <= period:  # deterministic and never waiting: exact
                return QueuePrediction(fps, 0.0, one + rest_mean, one + rest_mean, one / period, bottleneck)
            full = capacity * one + rest_mean  # saturated: see the module's docstring
            return QueuePrediction(1000.0 / one, 1.0 - period / one, full - period / 2, full - period / 20, 1.0,
                                   bottleneck)
        return simulate(Arrivals(fps, "periodic"), service, others, capacity, bottleneck)
    loss, mean_in_system, busy = mg1k(fps / 1000.0, s, capacity)
    lam_eff = fps / 1000.0 * (1.0 - loss)
    sojourn = mean_in_system / lam_eff if lam_eff > 0 else float("inf")
    p95 = simulate(Arrivals(fps, "poisson"), service, others, capacity, bottleneck).latency_p95_ms if tail else 0.0
    return QueuePrediction(fps * (1.0 - loss), loss, sojourn + rest_mean, p95, busy, bottleneck)


def _p95_of_sum(others: tuple[tuple[float, ...], ...]) -> float:
    if not others:
        return 0.0
    rng = np.random.default_rng(SIM_SEED)
    total = sum(rng.choice(np.asarray(o), size=SIM_FRAMES) for o in others)
    return float(np.percentile(total, 95))


def arrival_pmf(lam_per_ms: float, service: np.ndarray, n: int) -> np.ndarray:
    """a_k, k < n: the probability of k Poisson arrivals (rate `lam_per_ms`) during one service time, averaged
    over the service samples (ms)."""
    x = lam_per_ms * np.asarray(service, dtype=np.float64)[None, :]
    k = np.arange(n, dtype=np.float64)[:, None]
    log_fact = np.array([math.lgamma(i + 1.0) for i in range(n)])[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):  # x = 0: log 0 = -inf; k log x is 0 at k = 0
        klogx = np.where(k == 0, 0.0, k * np.log(x))
    return np.asarray(np.exp(klogx - x - log_fact).mean(axis=1))


def mg1k(lam_per_ms: float, service: np.ndarray, capacity: int) -> tuple[float, float, float]:
    """The M/G/1/K queue, exactly (embedded chain at departures): (loss ratio, mean frames in the system,
    utilisation of the server). `service`: samples of the service time in ms (one: deterministic)."""
    k = capacity
    a = arrival_pmf(lam_per_ms, service, k)
    p = np.zeros((k, k))
    for i in range(k):
        lo = max(i - 1, 0)  # a departure leaving i behind: the next one leaves i - 1 + arrivals (i = 0: arrivals)
        for j in range(lo, k - 1):
            p[i, j] = a[j - lo]
        p[i, k - 1] = max(0.0, 1.0 - p[i, : k - 1].sum())
    eq = p.T - np.eye(k)
    eq[-1, :] = 1.0
    rhs = np.zeros(k)
    rhs[-1] = 1.0
    pi = np.linalg.solve(eq, rhs)
    pi = np.clip(pi, 0.0, None)
    pi /= pi.sum()
    rho = lam_per_ms * float(np.mean(service))
    norm = pi[0] + rho
    time_avg = np.append(pi / norm, max(0.0, 1.0 - 1.0 / norm))
    loss = float(time_avg[-1])
    mean_in_system = float(np.dot(np.arange(k + 1), time_avg))
    return loss, mean_in_system, float(1.0 - time_avg[0])


def simulate(arrivals: Arrivals, service: Sequence[float], others: Sequence[Sequence[float]] = (),
             capacity: int = 1, bottleneck: str = "service", frames: int = SIM_FRAMES,
             seed: int = SIM_SEED) -> QueuePrediction:
    """A seeded discrete-event simulation of the same single-server queue of capacity `capacity` (bounded:
    `frames` arrivals, the first tenth not counted). Service times are drawn from `service` (ms samples);
    each answered frame adds a draw of every stage in `others` to its latency."""
    _check(arrivals, capacity)
    rng = np.random.default_rng(seed)
    gap = 1000.0 / arrivals.fps
    if arrivals.kind == "poisson":
        times = np.cumsum(rng.exponential(gap, size=frames))
    else:
        times = np.arange(frames, dtype=np.float64) * gap
    draws = rng.choice(np.asarray(service, dtype=np.float64), size=frames).tolist()
    extra = np.zeros(frames)
    for o in others:
        extra += rng.choice(np.asarray(o, dtype=np.float64), size=frames)
    warm = int(frames * SIM_WARMUP)
    in_system: deque[float] = deque()
    last = 0.0
    lost = 0
    busy = 0.0
    sojourn: list[float] = []
    for i, t in enumerate(times.tolist()):
        while in_system and in_system[0] <= t:
            in_system.popleft()
        if len(in_system) >= capacity:
            if i >= warm:
                lost += 1
            continue
        start = last if last > t else t
        last = start + draws[i]
        in_system.append(last)
        if i >= warm:
            sojourn.append(last - t + float(extra[i]))
            busy += draws[i]
    counted = frames - warm
    span = float(times[-1] - times[warm - 1]) if warm > 0 else float(times[-1])
    loss = lost / counted
    lat = np.asarray(sojourn) if sojourn else np.zeros(1)
    return QueuePrediction(
        throughput_fps=arrivals.fps * (1.0 - loss),
        loss_ratio=loss,
        latency_mean_ms=float(lat.mean()),
        latency_p95_ms=float(np.percentile(lat, 95)),
        utilisation=min(1.0, busy / span) if span > 0 else 0.0,
        bottleneck=bottleneck,
    )


def knee_fps(stages: Mapping[str, Sequence[float] | float]) -> float:
    """The frame rate the bottleneck stage saturates at (1000 / its mean service time in ms); inf if all are 0."""
    mean = max(float(_samples(n, v).mean()) for n, v in stages.items())
    return 1000.0 / mean if mean > 0 else float("inf")


def rates_around_knee(knees: Sequence[float], also: Sequence[float] = ()) -> list[float]:
    """A few frame rates around each knee in `knees` (just below and above it, and a little further), plus
    `also`; to 3 significant digits, sorted, each once."""
    base = [k * f for k in knees if math.isfinite(k) for f in (0.8, 0.95, 1.05, 1.25)]
    return sorted({float(f"{r:.3g}") for r in [*base, *also] if r > 0})


__all__ = [
    "ARRIVAL_KINDS", "EDGE_QUEUE_CAPACITY", "ArrivalKind", "Arrivals", "QueuePrediction", "arrival_pmf", "knee_fps",
    "loss_and_latency", "mg1k", "predict_queue", "rates_around_knee", "simulate",
]
