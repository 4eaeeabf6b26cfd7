"""CLI responsiveness: each command's `--help` and a bad-file error, next to `python -c pass` (the floor).

Heavy modules load only in the commands that need them, after argument and file checks, so these paths
should sit close to the floor. Prints a Markdown table of the median wall time over --runs runs.
Usage: python benchmarks/bench_cli.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from splitsdk.cli.main import COMMANDS


def timed(argv: list[str], cwd: Path, runs: int) -> tuple[float, int]:
    """Median seconds of `python ARGV` and its exit code."""
    times, code = [], 0
    for _ in range(runs):
        start = time.perf_counter()
        code = subprocess.run([sys.executable, *argv], cwd=cwd, capture_output=True, timeout=300).returncode
        times.append(time.perf_counter() - start)
    return statistics.median(times), code


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    opts = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        (cwd / "plan.json").write_text('{"schema_version": 2, "mod')  # truncated
        bad_file = {
            "convert": ["plan.json", "--model", "m.keras", "-o", "bundle"],
            "report": ["plan.json", "-o", "report"],
            "plan": ["m.keras", "--target", "cortex-a7", "--uplink", "3", "-o", "no/such/dir/plan.json"],
            "inspect": ["missing.keras"],
            "targets": ["missing.toml"],
            "serve": ["no-bundle", "--config", "missing.toml"],
        }
        floor, _ = timed(["-c", "pass"], cwd, opts.runs)
        print(f"`python -c pass` (the floor): {floor * 1000:.0f} ms, median of {opts.runs}\n")
        print("| command | --help ms | bad-file error ms (exit) |")
        print("|---|---:|---:|")
        for module in COMMANDS:
            name = module.removeprefix("cmd_").replace("_", "-")
            helped, _ = timed(["-m", "splitsdk", name, "--help"], cwd, opts.runs)
            bad = "-"
            if name in bad_file:
                t, code = timed(["-m", "splitsdk", name, *bad_file[name]], cwd, opts.runs)
                bad = f"{t * 1000:.0f} ({code})"
            print(f"| {name} | {helped * 1000:.0f} | {bad} |")


if __name__ == "__main__":
    main()
