"""The frame-rate model (`splitsdk.plan.traffic`) against closed forms and a long seeded simulation, in one run.

For service-time distributions the edge app could show (deterministic, exponential, a measured-like skewed
sample set), loads rho = fps x mean service from 0.5 to 1.5 and capacities K = 4 and 10 (the edge app's
`--queue-depth 1` and `4`): the predicted loss ratio and mean/p95 latency next to

* the M/M/1/K closed form (1 - rho) rho^K / (1 - rho^(K+1)) for exponential service with Poisson arrivals;
* a long simulation (`LONG` arrivals, another seed) of the same queue: the model's error, absolute for the
  loss ratio and relative for the latencies;

and the cost of one prediction (embedded chain, and the bounded simulation the p95 comes from) against the
long simulation, as ratios. Nothing here is timed in a test.

    .venv/bin/python benchmarks/bench_traffic_model.py [-o out/bench_traffic_model.md]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from splitsdk.plan.traffic import Arrivals, mg1k, predict_queue, simulate

LONG = 200_000  # arrivals in the reference simulation
MEAN_MS = 10.0
N = 4000
_U = (np.arange(N) + 0.5) / N


def _lognormal() -> np.ndarray:
    """Lognormal, sigma 0.5 (like a measured send time: mostly near the mean, a long right tail), mean 10 ms."""
    s = np.random.default_rng(7).lognormal(0.0, 0.5, size=N)
    return np.asarray(s / s.mean() * MEAN_MS)


SERVICES = {
    "deterministic": np.array([MEAN_MS]),
    "exponential": -np.log(1.0 - _U) * MEAN_MS,
    "lognormal": _lognormal(),
}
RHOS = (0.5, 0.8, 0.95, 1.05, 1.25, 1.5)
CAPACITIES = (4, 10)


def mm1k(rho: float, k: int) -> float:
    return 1.0 / (k + 1) if abs(rho - 1.0) < 1e-12 else (1 - rho) * rho**k / (1 - rho ** (k + 1))


def run() -> str:
    rows = []
    t_chain = t_pred = t_long = 0.0
    worst = {"loss": 0.0, "mean": 0.0, "p95": 0.0, "closed": 0.0}
    for kind in ("poisson", "periodic"):
        for name, service in SERVICES.items():
            for k in CAPACITIES:
                for rho in RHOS:
                    fps = rho / MEAN_MS * 1000.0
                    arrivals = Arrivals(fps, kind)  # type: ignore[arg-type]
                    t0 = time.perf_counter()
                    if kind == "poisson":
                        mg1k(fps / 1000.0, service, k)
                    t1 = time.perf_counter()
                    pred = predict_queue(arrivals, {"send": service.tolist()}, k)
                    t2 = time.perf_counter()
                    ref = simulate(arrivals, service.tolist(), capacity=k, frames=LONG, seed=12345)
                    t3 = time.perf_counter()
                    t_chain, t_pred, t_long = t_chain + (t1 - t0), t_pred + (t2 - t1), t_long + (t3 - t2)
                    closed = mm1k(rho, k) if (kind, name) == ("poisson", "exponential") else None
                    d_loss = abs(pred.loss_ratio - ref.loss_ratio)
                    d_mean = abs(pred.latency_mean_ms / ref.latency_mean_ms - 1)
                    d_p95 = abs(pred.latency_p95_ms / ref.latency_p95_ms - 1)
                    worst["loss"] = max(worst["loss"], d_loss)
                    worst["mean"] = max(worst["mean"], d_mean)
                    worst["p95"] = max(worst["p95"], d_p95)
                    if closed is not None:
                        worst["closed"] = max(worst["closed"], abs(pred.loss_ratio - closed))
                    rows.append(
                        f"| {kind} | {name} | {k} | {rho:g} | {pred.loss_ratio:.4f} | "
                        f"{'-' if closed is None else f'{closed:.4f}'} | {ref.loss_ratio:.4f} | {d_loss:.4f} | "
                        f"{pred.latency_mean_ms:.1f} | {ref.latency_mean_ms:.1f} | {d_mean * 100:.1f}% | "
                        f"{pred.latency_p95_ms:.1f} | {ref.latency_p95_ms:.1f} | {d_p95 * 100:.1f}% |"
                    )
    n = len(rows)
    head = [
        "| arrivals | service (mean 10 ms) | K | rho | loss (model) | loss (M/M/1/K closed form) | loss (long sim) "
        "| abs. error | mean ms (model) | mean ms (long sim) | rel. error | p95 ms (model) | p95 ms (long sim) "
        "| rel. error |",
        "|" + "---|" * 14,
    ]
    summary = [
        "",
        f"{n} cases. Largest model error against the long simulation ({LONG:,} arrivals, another seed): loss ratio "
        f"{worst['loss']:.4f} (absolute), mean latency {worst['mean'] * 100:.1f}%, p95 latency "
        f"{worst['p95'] * 100:.1f}%; against the M/M/1/K closed form: {worst['closed']:.2e}.",
        f"Cost per case: embedded chain {t_chain / (n / 2) * 1e3:.2f} ms (Poisson cases), a full prediction (chain + "
        f"the bounded p95 simulation; for periodic arrivals the closed form with deterministic service, else the "
        f"bounded simulation) {t_pred / n * 1e3:.1f} ms, the "
        f"long simulation {t_long / n * 1e3:.1f} ms: prediction / long simulation = {t_pred / t_long:.3f}.",
    ]
    return "\n".join(head + rows + summary) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", help="also write the table to this file")
    args = ap.parse_args()
    text = run()
    print(text)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
