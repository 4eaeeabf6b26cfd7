"""Edge app benchmark on the checked-in example (camera net split after pool1, firmware_examples/):

1. sizes: the stripped binary and the firmware directory (binary + model + runtime libraries), for
   cortex-a7 and for the host;
2. per-stage time of the app (capture, infer, pack, send_result) under qemu-arm -cpu cortex-a7 and
   natively on the host, side by side, against a real `splitsdk serve` on loopback;
3. packing time measured inside the app (LUT requantise + b-bit pack of the 32x64x16 crossing tensor)
   for b = 8, 4, 2 (the same model; the manifest's wire bits rewritten), with the payload per frame.

Times under QEMU are emulated-CPU times on this machine, not a real Cortex-A7's; ratios in one run are
what the table is for. `python benchmarks/bench_edge_app.py [--quick]`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from splitsdk import wire  # noqa: E402
from splitsdk.codegen import generate  # noqa: E402
from splitsdk.toolchain.build import Firmware, build_firmware  # noqa: E402
from splitsdk.toolchain.emulate import AppRun, ReceiverProcess, app_args, run_app  # noqa: E402
from splitsdk.wire.bundle import wire_quant_params  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "firmware_examples" / "camera-net-cortex-a7" / "bundle"
STAGES = ("capture", "infer", "pack", "send_result")


def write_ppm_frames(folder: Path, shape: tuple[int, ...], n: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    h, w, c = shape
    rng = np.random.default_rng(0)
    magic = b"P6" if c == 3 else b"P5"
    for i in range(n):
        px = rng.integers(0, 256, size=(h, w, c), dtype=np.uint8)
        (folder / f"frame{i:03d}.ppm").write_bytes(magic + f"\n{w} {h}\n255\n".encode() + px.tobytes())
    return folder


def with_wire_bits(src: Path, dest: Path, bits: int) -> Path:
    """A copy of the bundle whose crossing tensors travel at `bits` (wire grid and LUT recomputed)."""
    shutil.copytree(src, dest)
    manifest = json.loads((dest / "manifest.json").read_text())
    for c in manifest["crossing"]:
        scale, zp = wire_quant_params(c["edge_scale"], c["edge_zero_point"], bits)
        lut = wire.build_lut(c["edge_scale"], c["edge_zero_point"], scale, zp, bits)
        c.update(bits=bits, scale=scale, zero_point=zp, lut=[int(v) for v in lut])
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return dest


def run(fw: Firmware, bundle: Path, frames: Path) -> AppRun:
    with ReceiverProcess(bundle) as receiver:
        result = run_app(fw, app_args(fw, frames, receiver.port, extra=["--quiet"]))
    if result.returncode != 0:
        raise SystemExit(f"edge app failed: {result.error or result.stderr[-500:]}")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer frames")
    args = parser.parse_args()
    n = 4 if args.quick else 12
    manifest = json.loads((EXAMPLE / "manifest.json").read_text())
    shape = tuple(manifest["input"]["shape"])
    with tempfile.TemporaryDirectory(prefix="bench-edge-") as tmp:
        work = Path(tmp)
        frames = write_ppm_frames(work / "frames", shape, n)
        fws: dict[str, Firmware] = {}
        runs: dict[str, AppRun] = {}
        for target in ("cortex-a7", "host"):
            generate(EXAMPLE, target, work / f"proj-{target}")
            fws[target] = build_firmware(work / f"proj-{target}", work / f"fw-{target}", build_dir=work / f"b-{target}")
            runs[target] = run(fws[target], EXAMPLE, frames)

        print(f"Example: {EXAMPLE.relative_to(REPO)} (input {'x'.join(map(str, shape))}), {n} PPM frames\n")
        print("| target | stripped binary | firmware (binary + model + libs) | libraries |")
        print("|---|---:|---:|---:|")
        for target, fw in fws.items():
            size = f"{fw.binary_bytes / 1024:.1f} KiB | {fw.firmware_bytes / 1e6:.2f} MB"
            print(f"| {target} | {size} | {len(fw.libraries)} |")

        print("\nPer-stage mean time per frame (ms; first frame included):\n")
        print("| stage | qemu-arm cortex-a7 | host (x86-64, native) | qemu / host |")
        print("|---|---:|---:|---:|")
        for stage in STAGES:
            a, h = runs["cortex-a7"].stages[stage]["mean_ms"], runs["host"].stages[stage]["mean_ms"]
            print(f"| {stage} | {a:.3f} | {h:.3f} | {a / h:.1f}x |")

        print("\nPacking inside the app (qemu-arm cortex-a7), crossing tensor pool1 32x64x16:\n")
        print("| wire bits | payload B/frame | pack ms (mean) | infer ms (mean) | pack / infer |")
        print("|---:|---:|---:|---:|---:|")
        project = work / "proj-bits"
        for bits in (8, 4, 2):
            bundle = with_wire_bits(EXAMPLE, work / f"bundle-{bits}", bits)
            generate(bundle, "cortex-a7", project)  # only config.h changes: an incremental rebuild
            fw = build_firmware(project, work / f"fw-bits-{bits}", build_dir=work / "b-bits")
            r = run(fw, bundle, frames)
            payload = sum((int(np.prod(c["shape"])) * bits + 7) // 8 for c in manifest["crossing"])
            pack, infer = r.stages["pack"]["mean_ms"], r.stages["infer"]["mean_ms"]
            print(f"| {bits} | {payload} | {pack:.3f} | {infer:.3f} | {pack / infer:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
