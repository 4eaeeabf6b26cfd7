"""Feature compression (zstd): what zstd saves on the example models' crossing tensors, and what it costs.

In one run, for crossing tensors of the licence-plate reader (lpr_small, 128x256 RGB frames of
`splitsdk.examples.lpr.data`) and the digits CNN (32x32 greyscale test frames of `splitsdk.examples.digits.data`),
with the trained weights in `sdk/examples/*/weights`, at 2, 4 and 8 bits:

1. packed bytes and zstd bytes per frame (mean), and their ratio: `splitsdk.plan.compression.crossing_ratios`
   (each frame on the b-bit min-max wire grid over the frames' range, packed with the shared C, compressed
   frame by frame at level 3 with the shared C: measured);
2. compress and decompress MB/s of uncompressed (packed) bytes on this machine through `splitsdk.wire`
   (the cffi binding of sdk/native/splitcodec.c; best of 5 passes, Python call overhead included);
3. compress instructions per uncompressed byte on the target: `benchmarks/native/zstd_compress.c`
   (sp_compress of the shared C, linked with the target sysroot's static libzstd, cross-compiled with the
   target's flags) under qemu-arm, counted by the TCG plugin `benchmarks/native/qemu_insn_count.c` (qemu-arm
   has no -icount in user mode; the plugin counts what an -icount shift=0 clock would): (count(N frames) -
   count(1 frame)) / ((N - 1) x bytes), so zstd's one-time context set-up is left out as the app reuses its
   context. ns per byte = that / the target's clock / IPC (`--ipc`, default 1.0): the figure behind
   `zstd_ns_per_byte` (`splitsdk.plan.compression`).

Prints Markdown. `python benchmarks/bench_compression.py [--quick] [--target cortex-a7] [--ipc 1.0]`.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import timeit
from dataclasses import dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from splitsdk import wire  # noqa: E402
from splitsdk.plan.compression import DEFAULT_LEVEL, crossing_ratios, wire_codes  # noqa: E402
from splitsdk.quant.grid import value_range  # noqa: E402
from splitsdk.target import Target, load_target  # noqa: E402
from splitsdk.toolchain.sysroot import ensure_sysroot  # noqa: E402
from splitsdk.toolchain.tools import run_tool  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NATIVE = Path(__file__).resolve().parent / "native"
BITS = (2, 4, 8)
# Crossing tensors: the LPR plan's split (rows_max, `make demo`) and earlier backbone outputs; the digits blocks.
TENSORS = {
    "lpr_small": ("b1_relu", "pool3", "rows_max"),
    "digits_cnn": ("b0_pool", "b1_pool", "b2_pool", "b3_relu"),
}
_INSNS = re.compile(r"^insns (\d+)$", re.M)


def activations(quick: bool) -> dict[str, dict[str, np.ndarray]]:
    """model -> tensor -> float32 (frames, *shape) on the model's test frames, trained weights."""
    import keras

    from splitsdk.examples.digits import data as digits
    from splitsdk.examples.lpr import data as lpr
    from splitsdk.examples.lpr import weights_path

    plates, _ = lpr.generate(2, 8 if quick else 32)
    inputs = {
        "lpr_small": (weights_path("small"), plates.astype(np.float32) / 255.0),
        "digits_cnn": (ROOT / "sdk" / "examples" / "digits" / "weights" / "digits_cnn.keras",
                       digits.load("test")[0][: 16 if quick else 64]),
    }
    out: dict[str, dict[str, np.ndarray]] = {}
    for name, (path, x) in inputs.items():
        model = keras.models.load_model(path, compile=False)
        taps = keras.Model(model.input, [model.get_layer(t).output for t in TENSORS[name]])
        values = taps.predict(x, verbose=0, batch_size=16)
        out[name] = {t: np.asarray(v, np.float32) for t, v in zip(TENSORS[name], values, strict=True)}
    return out


def payloads(acts: np.ndarray, bits: int) -> list[bytes]:
    """Each frame's packed codes, as the camera sends them uncompressed (the grid crossing_ratios uses)."""
    lo, hi = value_range(acts)
    return [wire.pack(wire_codes(frame.reshape(-1), lo, hi, bits), bits) for frame in acts]


def host_mb_s(packed: list[bytes]) -> tuple[float, float]:
    """(compress, decompress) MB/s of uncompressed bytes on this machine, best of 5 passes over the frames."""
    total = sum(len(p) for p in packed)
    zipped = [wire.compress(p, DEFAULT_LEVEL) for p in packed]
    comp = min(timeit.repeat(lambda: [wire.compress(p, DEFAULT_LEVEL) for p in packed], number=1, repeat=5))
    sizes = [len(p) for p in packed]
    dec = min(timeit.repeat(lambda: [wire.decompress(z, n) for z, n in zip(zipped, sizes, strict=True)],
                            number=1, repeat=5))
    return total / comp / 1e6, total / dec / 1e6


@dataclass(frozen=True)
class Compressor:
    binary: Path
    sysroot: Path
    counter: Path
    target: Target


def build_compressor(target: Target, workdir: Path) -> Compressor:
    """Cross-compile zstd_compress.c + the shared splitcodec.c for `target` (static libzstd of its sysroot)."""
    assert target.toolchain is not None and target.toolchain.sysroot is not None, f"{target.name}: no toolchain"
    sysroot = ensure_sysroot(target)
    libdir = sysroot / target.toolchain.sysroot.lib_dir
    binary = workdir / "zstd_compress"
    shared = ROOT / "sdk" / "native"
    run_tool([f"{target.toolchain.triple}-gcc", f"--sysroot={sysroot}", *target.toolchain.cflags, "-O2",
              f"-I{shared}", str(NATIVE / "zstd_compress.c"), str(shared / "splitcodec.c"),
              "-o", str(binary), f"-L{libdir}", f"-Wl,-rpath-link,{libdir}", str(libdir / "libzstd.a")],
             "cross-compiling zstd_compress.c")
    counter = workdir / "qemu_insn_count.so"
    run_tool(["gcc", "-O2", "-shared", "-fPIC", str(NATIVE / "qemu_insn_count.c"), "-o", str(counter)],
             "building the instruction-count plugin")
    return Compressor(binary, sysroot, counter, target)


def target_run(c: Compressor, raw: Path, size: int, count: int) -> tuple[int, list[int]]:
    """(guest instructions, compressed sizes) of compressing the first `count` payloads under qemu-arm."""
    assert c.target.qemu is not None, f"{c.target.name} has no QEMU"
    cmd = [c.target.qemu.user_binary, "-cpu", c.target.qemu.user_cpu, "-L", str(c.sysroot), "-plugin",
           str(c.counter), "-d", "plugin", str(c.binary), str(raw), str(size), str(count), str(DEFAULT_LEVEL)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"zstd_compress failed ({proc.returncode}): {proc.stderr.strip()[-300:]}")
    m = _INSNS.search(proc.stderr) or _INSNS.search(proc.stdout)
    if m is None:
        raise RuntimeError(f"the instruction-count plugin printed nothing: {proc.stderr.strip()[-300:]}")
    return int(m.group(1)), [int(n) for n in re.findall(r"^bytes \d+ (\d+)$", proc.stdout, re.M)]


def bench(target: Target, quick: bool, ipc: float) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="bench-zstd-") as tmp:
        comp = build_compressor(target, Path(tmp))
        for model, tensors in activations(quick).items():
            for tensor, acts in tensors.items():
                ratios = crossing_ratios({tensor: acts}, BITS)[tensor]
                for b in BITS:
                    packed = payloads(acts, b)
                    zipped = [len(wire.compress(p, DEFAULT_LEVEL)) for p in packed]
                    assert sum(zipped) / sum(map(len, packed)) == ratios[b]
                    raw = Path(tmp) / "payloads.bin"
                    raw.write_bytes(b"".join(packed))
                    size, n = len(packed[0]), len(packed)
                    full, target_sizes = target_run(comp, raw, size, n)
                    one, _ = target_run(comp, raw, size, 1)
                    ipb = (full - one) / ((n - 1) * size)
                    c_mb, d_mb = host_mb_s(packed)
                    rows.append({
                        "model": model, "tensor": tensor, "shape": "x".join(map(str, acts.shape[1:])), "bits": b,
                        "frames": n, "packed": size, "zstd": float(np.mean(zipped)), "ratio": ratios[b],
                        "target_ratio": sum(target_sizes) / (n * size), "compress_mb_s": c_mb,
                        "decompress_mb_s": d_mb, "ipb": ipb,
                        "ns_per_byte": ipb / (target.device.clock_mhz * 1e-3) / ipc,
                    })
    return rows


def table(rows: list[dict[str, object]], target: Target, ipc: float) -> str:
    cols = ["model", "tensor", "shape", "bits", "frames", "packed B/frame", "zstd B/frame (mean)", "zstd / packed",
            f"zstd / packed ({target.name} libzstd)", "compress MB/s (host)", "decompress MB/s (host)",
            f"instr/byte ({target.name}, qemu)", f"ns/byte ({target.device.clock_mhz:g} MHz, IPC {ipc:g})"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [r["model"], r["tensor"], r["shape"], r["bits"], r["frames"], r["packed"], f"{r['zstd']:.0f}",
                 f"{r['ratio']:.3f}", f"{r['target_ratio']:.3f}", f"{r['compress_mb_s']:.0f}",
                 f"{r['decompress_mb_s']:.0f}", f"{r['ipb']:.1f}", f"{r['ns_per_byte']:.1f}"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer frames")
    p.add_argument("--target", default="cortex-a7")
    p.add_argument("--ipc", type=float, default=1.0, help="instructions per cycle assumed for ns/byte")
    args = p.parse_args(argv)
    target = load_target(args.target)
    rows = bench(target, args.quick, args.ipc)
    print(f"zstd level {DEFAULT_LEVEL}; host libzstd through splitsdk.wire, target: the {target.name} sysroot's "
          "static libzstd under qemu-arm.\n")
    print(table(rows, target, args.ipc))
    total_bytes = sum(int(str(r["packed"])) * (int(str(r["frames"])) - 1) for r in rows)
    weighted = sum(float(str(r["ipb"])) * int(str(r["packed"])) * (int(str(r["frames"])) - 1) for r in rows)
    mean_ipb = weighted / total_bytes
    print(f"\nInstructions per uncompressed byte over all rows (weighted by bytes): {mean_ipb:.1f} -> "
          f"{mean_ipb / (target.device.clock_mhz * 1e-3) / args.ipc:.1f} ns/byte at {target.device.clock_mhz:g} MHz, "
          f"IPC {args.ipc:g}; median row {float(np.median([float(str(r['ipb'])) for r in rows])):.1f} instr/byte.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
