"""Fleet throughput: frames/s and p99 RESULT latency for 1 vs 2 receivers and 1 vs 2 Ray Serve replicas.

Run alone: `python benchmarks/bench_fleet.py [--cameras 1000] [--seconds 10]`. Each configuration is a
real local fleet (`splitsdk.cloud.fleet.up`: PostgreSQL, `ray start --head`, receivers with
`--engine ray`, HAProxy) with the Serve application deployed at the replica count asked; the cameras are
tests/fleet_load.py (asyncio, own process) sending back to back through HAProxy. The CPU seconds each
process used during the load (/proc/<pid>/stat; Ray replicas found by their process title) say where the
bottleneck is: the part whose CPU share is highest at the machine's core count.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import fleet_load  # noqa: E402
from receiver_load import cpu_seconds  # noqa: E402
from test_receiver import make_frame  # noqa: E402
from test_wire_bundle import build_bundle  # noqa: E402

from splitsdk import wire  # noqa: E402
from splitsdk.cloud import fleet  # noqa: E402
from splitsdk.wire.bundle import load_bundle  # noqa: E402

CONFIGS = ((1, 1), (2, 1), (1, 2), (2, 2))  # (receivers, Serve replicas)


def _pids_by_title(prefix: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "cmdline").read_bytes().startswith(prefix.encode()):
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


def _cpu(groups: dict[str, list[int]]) -> dict[str, float]:
    out = {}
    for name, pids in groups.items():
        total = 0.0
        for pid in pids:
            try:
                total += cpu_seconds(pid)
            except (OSError, IndexError):
                continue
        out[name] = total
    return out


def run_one(
    bundle_dir: Path, root: Path, receivers: int, replicas: int, cameras: int, seconds: float
) -> dict[str, Any]:
    config = root / "receiver.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(fleet.receiver_toml() + f"[engine]\nreplicas = {replicas}\nnum_cpus = 0.5\n")
    state = fleet.up(bundle_dir, root / "fleet", receivers=receivers, engine="ray", num_cpus=2, config=config)
    try:
        bundle = load_bundle(bundle_dir)
        frame = root / "frame.bin"
        frame.write_bytes(wire.encode(make_frame(bundle, "bench", 0)))
        port = int(state.listen.rpartition(":")[2])
        groups = {
            "receivers": [p.pid for p in state.processes if p.name.startswith("receiver")],
            "haproxy": [p.pid for p in state.processes if p.name == "haproxy"],
            "serve_replicas": _pids_by_title("ray::ServeReplica"),
            "postgres": _pids_by_title("postgres: "),  # its backends (the postmaster itself idles)
        }
        before = _cpu(groups)
        out = root / "load.json"
        t0 = time.perf_counter()
        fleet_load.start(port, bundle.plan_sha256, frame, out, cameras, prefix="b", seconds=seconds).wait(seconds + 120)
        wall = time.perf_counter() - t0
        used = {k: v - before.get(k, 0.0) for k, v in _cpu(groups).items()}
        data = json.loads(out.read_text())
        lat = sorted(data["latency_s"])
        return {
            "receivers": receivers,
            "replicas": replicas,
            "cameras": cameras,
            "frames_s": round(len(data["acks"]) / data["elapsed_s"], 1),
            "p50_ms": round(1000 * lat[len(lat) // 2], 1) if lat else None,
            "p99_ms": round(1000 * lat[int(len(lat) * 0.99)], 1) if lat else None,
            "cpu_share": {k: round(v / wall, 2) for k, v in used.items()},  # cores busy on average
        }
    finally:
        fleet.down(root / "fleet")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="splitsdk-bench-fleet-"))
    work.chmod(0o755)  # the postgres user reaches the cluster under it
    bundle_dir = build_bundle(work / "bundle", bits=4)
    rows = [run_one(bundle_dir, work / f"{r}x{s}", r, s, args.cameras, args.seconds) for r, s in CONFIGS]
    print(f"cores: {os.cpu_count()}, cameras: {args.cameras}, {args.seconds:.0f} s each")
    print("receivers replicas  frames/s   p50 ms   p99 ms   cores busy (receivers haproxy serve postgres)")
    for r in rows:
        c = r["cpu_share"]
        print(
            f"{r['receivers']:>9} {r['replicas']:>8} {r['frames_s']:>9} {r['p50_ms']:>8} {r['p99_ms']:>8}   "
            f"{c['receivers']:.2f} {c['haproxy']:.2f} {c['serve_replicas']:.2f} {c['postgres']:.2f}"
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
