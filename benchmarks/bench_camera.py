"""Emulated camera benchmark on the checked-in example (camera net split after pool1, firmware_examples/):

build the firmware, build the camera image, boot it under qemu-system-arm -M virt -cpu cortex-a7 with
`-icount shift=N`, `flash` the firmware against a real `splitsdk serve` on the host, let it run, then read
the app's per-stage times twice (`camera stats`: the app restarts and logs its stage times).

With -icount the guest's clock counts instructions (2^N ns each), so the stage times are virtual times,
reproducible run to run (the two runs side by side show it); at shift=0 one virtual ms is one million
guest instructions. They are instruction counts of Debian's baseline armhf TFLite (no NEON), not a real
Cortex-A7's cycle-accurate times. Boot and flash times are wall-clock on this (shared) machine.
`python benchmarks/bench_camera.py [--icount N] [--seconds S]`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from splitsdk.camera.flash import app_stats, flash  # noqa: E402
from splitsdk.camera.image import build_image  # noqa: E402
from splitsdk.camera.qemu import camera_down, camera_up  # noqa: E402
from splitsdk.examples.lpr.data import write_frames  # noqa: E402
from splitsdk.toolchain.build import build_firmware  # noqa: E402
from splitsdk.toolchain.emulate import ReceiverProcess  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "firmware_examples" / "camera-net-cortex-a7"
STAGES = ("capture", "infer", "pack", "send_result")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--icount", type=int, default=0, help="-icount shift (default 0: 1 ns per instruction)")
    ap.add_argument("--seconds", type=float, default=30.0, help="wall seconds to let the app run per reading")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-camera-") as tmp_name:
        tmp = Path(tmp_name)
        t = time.monotonic()
        fw = build_firmware(EXAMPLE / "project", tmp / "fw", build_dir=tmp / "build")
        build_s = time.monotonic() - t
        write_frames(tmp / "frames", seed=7, count=4)
        with ReceiverProcess(EXAMPLE / "bundle", db=tmp / "results.sqlite") as rx:
            server = f"10.0.2.2:{rx.port}"
            t = time.monotonic()
            image = build_image(tmp / "image", frames=tmp / "frames", target=fw.target)
            image_s = time.monotonic() - t
            cam = camera_up(image.root, icount=args.icount, timeout_s=300)
            try:
                remote = cam.remote(known_hosts=tmp / "known_hosts")
                t = time.monotonic()
                result = flash(fw.root, remote, server=server)
                flash_s = time.monotonic() - t
                runs = []
                for _ in range(2):
                    time.sleep(args.seconds)
                    runs.append(app_stats(remote)["stages"])
            finally:
                camera_down(image.root)
    print(
        f"firmware: binary {fw.binary_bytes / 1024:.0f} KiB, {fw.firmware_bytes / 1e6:.1f} MB in all "
        f"(build {build_s:.0f} s); image built in {image_s:.1f} s"
    )
    print(
        f"boot to SSH: {cam.boot_s:.1f} s wall; flash (copy, verify, switch, first result): {flash_s:.1f} s wall, "
        f"first result {result.connected_s:.1f} s after the switch\n"
    )
    print("| stage | run 1 frames | run 1 min ms | run 1 mean ms | run 2 frames | run 2 min ms | run 2 mean ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for stage in STAGES:
        a, b = runs[0][stage], runs[1][stage]  # type: ignore[index]
        print(
            f"| {stage} | {a['n']} | {a['min_ms']:.3f} | {a['mean_ms']:.3f} | {b['n']} | {b['min_ms']:.3f} | "
            f"{b['mean_ms']:.3f} |"
        )
    print(
        f"\nvirtual times at -icount shift={args.icount} ({2**args.icount} ns per guest instruction); "
        "min = a frame without contention from the capture thread"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
