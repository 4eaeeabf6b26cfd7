#!/usr/bin/env python3
"""Regenerate firmware_examples/ (`make firmware-examples`): checked-in generated edge projects.

Each example holds `bundle/` (the input: what `splitsdk convert` wrote for the example model and plan)
and `project/` (what `splitsdk generate` makes of it). The projects are golden files: a test
regenerates them from the checked-in bundles and fails on any difference. `--rebundle` rebuilds the
bundles themselves from the example model (model -> plan -> convert; slow, needs TensorFlow), for
when the converter changes on purpose.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from splitsdk.codegen import generate
from splitsdk.errors import SplitSdkError

ROOT = Path(__file__).resolve().parent.parent / "firmware_examples"


@dataclass(frozen=True)
class Example:
    name: str
    target: str
    uplink: str  # the link the plan is made for (50 Mbit/s: the camera net splits after pool1)
    calib_samples: int = 16


EXAMPLES = (Example("camera-net-cortex-a7", "cortex-a7", "50mbit"),)


def rebundle(ex: Example, dest: Path) -> None:
    """Example model -> plan -> bundle with the splitsdk CLI, into `dest` (replaced)."""
    cli = [sys.executable, "-m", "splitsdk"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        steps = [
            [sys.executable, "-m", "splitsdk.examples.camera_net", str(work / "model.keras")],
            [
                *cli,
                "plan",
                str(work / "model.keras"),
                "--target",
                ex.target,
                "--uplink",
                ex.uplink,
                "-o",
                str(work / "plan.json"),
            ],
            [
                *cli,
                "convert",
                str(work / "plan.json"),
                "--model",
                str(work / "model.keras"),
                "--samples",
                str(ex.calib_samples),
                "-o",
                str(work / "bundle"),
            ],
        ]
        for cmd in steps:
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(work / "bundle", dest)


def regenerate(root: Path = ROOT, examples: tuple[Example, ...] = EXAMPLES, new_bundles: bool = False) -> None:
    for ex in examples:
        bundle = root / ex.name / "bundle"
        if new_bundles or not (bundle / "manifest.json").is_file():
            rebundle(ex, bundle)
        changed = generate(bundle, ex.target, root / ex.name / "project")
        print(f"{ex.name}: {len(changed)} file(s) changed")


def main(argv: list[str]) -> int:
    try:
        regenerate(new_bundles="--rebundle" in argv)
    except (SplitSdkError, subprocess.CalledProcessError) as exc:
        print(f"firmware_examples: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
