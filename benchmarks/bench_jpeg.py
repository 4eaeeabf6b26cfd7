"""JPEG cloud-only: the camera's encode cost and sizes, libjpeg-turbo on the target against Pillow on the host.

In one run, for the licence-plate frames (128x256 RGB, `splitsdk.examples.lpr.data`) and the digits frames
(32x32 greyscale, `splitsdk.examples.digits.data`) at qualities 95/75/50:

1. `benchmarks/native/jpeg_encode.c` (libjpeg-turbo's jpeglib.h, one compressor reused across frames, libjpeg's
   defaults: baseline, 4:2:0, no Huffman optimisation) cross-compiled against the target's sysroot with the
   target's compiler flags and run under qemu-arm with the sysroot's loader and libraries;
   its instructions are counted by a TCG plugin (`benchmarks/native/qemu_insn_count.c`: qemu-arm has no
   -icount in user mode; the plugin counts exactly what a shift=0 instruction clock would) in two runs, N frames
   and none, so instructions per pixel = (count(N) - count(0)) / (N x H x W). libjpeg-turbo picks its NEON code
   from /proc/cpuinfo, which under qemu-arm is the build machine's: the run forces NEON (JSIMD_FORCENEON=1, what
   the camera's Cortex-A7 detects) and also measures the plain C path (JSIMD_FORCENONE=1);
2. ns per pixel = instructions per pixel / the target's clock / IPC (IPC stated: `--ipc`, default 1.0; an
   in-order dual-issue Cortex-A7 rarely sustains more, cache misses make it less): the figure behind the
   target's `jpeg_ns_per_pixel` (`splitsdk.plan.jpeg`);
3. the JPEG sizes of the target's libjpeg-turbo against `splitsdk.plan.jpeg.encode` (Pillow's libjpeg-turbo)
   on the same frames (ratio; and whether the first frame's JPEG is byte-identical), and Pillow's encode time
   per frame on this machine;
4. `splitsdk.plan.jpeg.jpeg_options` on the licence-plate reader (lpr_large) over its test frames: the
   CLOUD-ONLY+JPEG rows a plan gets (bytes, modelled encode time, label-free agreement, exact-plate accuracy);
5. the generated edge app itself for a CLOUD-ONLY+JPEG bundle (`splitsdk plan` chose JPEG: a small model on the
   licence-plate frame size with nothing fitting on the edge; convert, generate, build for the target, which links
   the sysroot's libjpeg-turbo statically): its instructions under qemu-arm (same plugin, NEON forced, --offline,
   N frames minus none) per pixel of each frame, whole (its capture stage: .raw read, pixels -> model input; its
   encode stage: input -> pixels, libjpeg-turbo) and the encode stage alone, against the standalone encoder of
   (1) on the same frames and the target's `jpeg_ns_per_pixel` model turned into instructions (x clock x IPC);
   and whether the app's JPEGs (`--dump`) are Pillow's bytes. The encode stage is counted exactly: the plugin
   also counts the instructions of blocks in the functions of libjpeg.a and the app's input -> pixels and
   encoder functions (`symbols=`; the app's unstripped build keeps its symbol table). The app runs three
   threads: the plugin's plain counter may lose a few counts when two of them retire instructions at once, so
   each count is taken twice and both are shown.

Prints a Markdown table. `python benchmarks/bench_jpeg.py [--quick] [--target cortex-a7] [--ipc 1.0]`.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from splitsdk.plan.jpeg import encode, pillow_jpeg  # noqa: E402
from splitsdk.target import Target, load_target  # noqa: E402
from splitsdk.toolchain.sysroot import ensure_sysroot  # noqa: E402
from splitsdk.toolchain.tools import run_tool  # noqa: E402

NATIVE = Path(__file__).resolve().parent / "native"
QUALITIES = (95, 75, 50)
SIMD = {"neon": {"JSIMD_FORCENEON": "1"}, "c": {"JSIMD_FORCENONE": "1"}}
_INSNS = re.compile(r"^insns (\d+)$", re.M)
_BYTES = re.compile(r"^bytes (\d+) (\d+)$", re.M)


@dataclass(frozen=True)
class Encoder:
    """The cross-compiled encoder, the sysroot it runs with, and the instruction-count plugin."""

    binary: Path
    sysroot: Path
    counter: Path
    target: Target


def build_encoder(target: Target, workdir: Path) -> Encoder:
    """Cross-compile jpeg_encode.c for `target` against its sysroot; build the counting plugin for this machine."""
    assert target.toolchain is not None, f"{target.name} has no cross toolchain"
    sysroot = ensure_sysroot(target)
    binary = workdir / "jpeg_encode"
    # the sysroot's glibc is newer than the cross compiler's own: search its libdir first (as the generated
    # projects' toolchain file does)
    libdir = sysroot / target.toolchain.sysroot.lib_dir
    run_tool([f"{target.toolchain.triple}-gcc", f"--sysroot={sysroot}", *target.toolchain.cflags, "-O2",
              str(NATIVE / "jpeg_encode.c"), "-o", str(binary), f"-L{libdir}", f"-Wl,-rpath-link,{libdir}",
              "-ljpeg"], "cross-compiling jpeg_encode.c")
    counter = workdir / "qemu_insn_count.so"
    run_tool(["gcc", "-O2", "-shared", "-fPIC", str(NATIVE / "qemu_insn_count.c"), "-o", str(counter)],
             "building the instruction-count plugin")
    return Encoder(binary, sysroot, counter, target)


@dataclass(frozen=True)
class EncodeRun:
    sizes: list[int]  # JPEG bytes per frame
    insns: int  # guest instructions of the whole run


def run_encoder(enc: Encoder, raw: Path, shape: tuple[int, int, int], quality: int, count: int,
                simd: str = "neon", first: Path | None = None) -> EncodeRun:
    """Encode the first `count` frames of `raw` (HWC uint8 frames of `shape`) under qemu-arm, counting instructions."""
    assert enc.target.qemu is not None, f"{enc.target.name} has no QEMU"
    h, w, c = shape
    cmd = [enc.target.qemu.user_binary, "-cpu", enc.target.qemu.user_cpu, "-L", str(enc.sysroot),
           "-plugin", str(enc.counter), "-d", "plugin", str(enc.binary), str(raw), str(w), str(h), str(c),
           str(quality), str(count), *([str(first)] if first is not None else [])]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False,
                          env={**os.environ, **SIMD[simd]})
    if proc.returncode != 0:
        raise RuntimeError(f"jpeg_encode failed ({proc.returncode}): {proc.stderr.strip()[-300:]}")
    m = _INSNS.search(proc.stderr) or _INSNS.search(proc.stdout)
    if m is None:
        raise RuntimeError(f"the instruction-count plugin printed nothing: {proc.stderr.strip()[-300:]}")
    sizes = [int(n) for _i, n in _BYTES.findall(proc.stdout)]
    if len(sizes) != count:
        raise RuntimeError(f"jpeg_encode printed {len(sizes)} sizes for {count} frames")
    return EncodeRun(sizes, int(m.group(1)))


def insns_per_pixel(enc: Encoder, raw: Path, shape: tuple[int, int, int], quality: int, count: int,
                    simd: str = "neon", first: Path | None = None) -> tuple[float, list[int]]:
    """Encode instructions per pixel (N frames minus none) and the target's JPEG sizes."""
    full = run_encoder(enc, raw, shape, quality, count, simd, first)
    base = run_encoder(enc, raw, shape, quality, 0, simd)
    return (full.insns - base.insns) / (count * shape[0] * shape[1]), full.sizes


def write_raw(pixels: np.ndarray, path: Path) -> Path:
    path.write_bytes(np.ascontiguousarray(pixels, dtype=np.uint8).tobytes())
    return path


def frame_sets(quick: bool) -> dict[str, np.ndarray]:
    """Each data set's pixels, (N, H, W, C) uint8, as the camera would hold them."""
    from splitsdk.examples.digits import data as digits
    from splitsdk.examples.lpr import data as lpr
    from splitsdk.plan.jpeg import to_pixels

    plates, _ = lpr.generate(2, 2 if quick else 6)  # already the camera's uint8 pixels
    return {
        "licence plate 128x256 RGB": plates,
        "digits 32x32 grey": to_pixels(digits.load("test")[0][: 8 if quick else 32]),
    }


def pillow_ms(pixels: np.ndarray, quality: int) -> float:
    """Pillow's encode time per frame on this machine (best of 3 passes over the frames)."""
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for p in pixels:
            encode(p, quality)
        best = min(best, (time.perf_counter() - t) / len(pixels))
    return best * 1e3


def bench(target: Target, quick: bool, ipc: float, qualities: Sequence[int] = QUALITIES) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="bench-jpeg-") as tmp:
        enc = build_encoder(target, Path(tmp))
        for name, pixels in frame_sets(quick).items():
            raw = write_raw(pixels, Path(tmp) / "frames.raw")
            shape = tuple(pixels.shape[1:])
            assert len(shape) == 3
            for q in qualities:
                first = Path(tmp) / "first.jpg"
                neon, sizes = insns_per_pixel(enc, raw, shape, q, len(pixels), "neon", first)
                plain, plain_sizes = insns_per_pixel(enc, raw, shape, q, len(pixels), "c")
                assert plain_sizes == sizes, "libjpeg-turbo's NEON and C paths wrote different JPEG sizes"
                pillow = [len(encode(p, q)) for p in pixels]
                rows.append({
                    "frames": f"{name} (x{len(pixels)})", "quality": q,
                    "target_bytes": float(np.mean(sizes)), "pillow_bytes": float(np.mean(pillow)),
                    "ratio": float(np.sum(sizes) / np.sum(pillow)),
                    "identical": first.read_bytes() == encode(pixels[0], q),
                    "neon_ipp": neon, "c_ipp": plain,
                    "neon_ns": neon / (target.device.clock_mhz * 1e-3) / ipc,
                    "c_ns": plain / (target.device.clock_mhz * 1e-3) / ipc,
                    "pillow_ms": pillow_ms(pixels, q),
                })
    return rows


def jpeg_app(target: Target, workdir: Path, pixels: np.ndarray, quality: int) -> Path:
    """The firmware of a CLOUD-ONLY+JPEG bundle at `quality` for `target`: a small Keras model on the frames'
    shape planned by `plan_model` (100 bytes of edge memory: only CLOUD-ONLY fits, and JPEG beats the raw frame
    within a 100-point limit), converted, generated and built. Returns the firmware directory."""
    import keras

    from splitsdk.codegen import generate
    from splitsdk.convert import convert_plan
    from splitsdk.plan import Constraints, plan_model, save_plan
    from splitsdk.profile.types import Link
    from splitsdk.toolchain.build import build_firmware

    keras.utils.set_random_seed(0)
    inp = keras.Input(tuple(pixels.shape[1:]), name="frame")
    x = keras.layers.Conv2D(4, 3, strides=4, activation="relu")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = workdir / f"app-q{quality}.keras"
    keras.Model(inp, keras.layers.Dense(4, activation="softmax")(x)).save(model)
    calib = workdir / "calib.npz"
    np.savez(calib, x=(pixels.astype(np.float32) / 255.0))
    plan = plan_model(str(model), target.name, Link(3.0, 10.0), Constraints(memory_bytes=100, max_accuracy_drop=100.0),
                      calib=calib, exact=None, jpeg=(quality,))
    c = plan.solution.crossing[0]
    if c.codec != "jpeg":
        raise RuntimeError(f"the plan did not choose CLOUD-ONLY+JPEG-Q{quality}: {plan.solution.reason}")
    save_plan(plan, workdir / f"plan-q{quality}.json")
    bundle, project, fw = (workdir / f"{name}-q{quality}" for name in ("bundle", "project", "fw"))
    convert_plan(workdir / f"plan-q{quality}.json", model, bundle, calib=calib, samples=4, verify=False)
    generate(bundle, target, project)
    build_firmware(project, fw, build_dir=workdir / f"build-q{quality}")
    return fw


@dataclass(frozen=True)
class AppCount:
    insns: int  # the whole process
    encode: int  # the encode stage: libjpeg-turbo's functions and the app's own (input -> pixels, the encoder)


def encode_symbols(target: Target, binary: Path, out: Path) -> Path:
    """The encode stage's functions in the unstripped app `binary`, one name a line: every function libjpeg.a
    defines (linked statically) and the app's input_to_pixels and JpegEncoder functions."""
    assert target.toolchain is not None
    nm = f"{target.toolchain.triple}-nm" if target.toolchain.triple else "nm"
    libjpeg = ensure_sysroot(target) / target.toolchain.sysroot.lib_dir / "libjpeg.a"
    lib = {ln.split()[-1] for ln in run_tool([nm, "--defined-only", str(libjpeg)], "listing libjpeg.a").splitlines()
           if len(ln.split()) == 3 and ln.split()[1] in "Tt"}
    app = {ln.split()[-1] for ln in run_tool([nm, "--defined-only", str(binary)], "listing the app").splitlines()
           if len(ln.split()) == 3 and ln.split()[1] in "Tt"}
    own = {name for name in app if "input_to_pixels" in name or "JpegEncoder" in name or "jpeg_fail" in name}
    names = sorted((lib & app) | own)
    if len(own) < 2 or not lib & app:
        raise RuntimeError(f"{binary}: the encode stage's functions are not in its symbol table")
    out.write_text("\n".join(names) + "\n")
    return out


def app_insns(fw: Path, binary: Path, counter: Path, symbols: Path, frames: Path, n: int,
              dump: Path | None = None) -> AppCount:
    """Guest instructions of the edge app (its unstripped `binary`, the firmware's libraries) under qemu-arm, NEON
    forced, on `n` frames, offline (no receiver): the whole process and the encode stage's functions."""
    from splitsdk.toolchain.build import load_firmware
    from splitsdk.toolchain.emulate import app_args, app_command

    firmware = load_firmware(fw)
    extra = ["--offline", "--quiet", *(["--dump", str(dump)] if dump is not None else [])]
    cmd = app_command(firmware, app_args(firmware, frames, 9, n=n, extra=extra))
    cmd[5] = str(binary)  # qemu-arm -cpu CPU -L ROOT BINARY ...: the same build with its symbol table
    cmd[1:1] = ["-plugin", f"{counter},symbols={symbols}", "-d", "plugin"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False,
                          env={**os.environ, **SIMD["neon"]})
    out = proc.stderr + proc.stdout
    m, e = _INSNS.search(out), re.search(r"^insns_symbols (\d+)$", out, re.M)
    if proc.returncode != 0 or m is None or e is None:
        raise RuntimeError(f"the edge app failed ({proc.returncode}): {proc.stderr.strip()[-300:]}")
    return AppCount(int(m.group(1)), int(e.group(1)))


def app_rows(target: Target, quick: bool, ipc: float, qualities: Sequence[int] = QUALITIES) -> list[dict[str, object]]:
    """Per quality: the edge app's per-pixel instructions (whole process and encode stage, two counts each), the
    standalone encoder's on the same frames, the model's, and whether the app's JPEGs are Pillow's."""
    from splitsdk.plan.jpeg import jpeg_ns_per_pixel

    frames_px = frame_sets(quick)["licence plate 128x256 RGB"]
    h, w, _ = frames_px.shape[1:]
    n = len(frames_px)
    ns, ns_from = jpeg_ns_per_pixel(target)
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="bench-jpeg-app-") as tmp:
        work = Path(tmp)
        enc = build_encoder(target, work)
        raw = write_raw(frames_px, work / "frames.raw")
        folder = work / "frames"
        folder.mkdir()
        for i, p in enumerate(frames_px):
            (folder / f"f{i:03d}.raw").write_bytes(p.tobytes())
        for q in qualities:
            fw = jpeg_app(target, work, frames_px, q)
            binary = work / f"build-q{q}" / "splitsdk-edge"
            symbols = encode_symbols(target, binary, work / f"symbols-q{q}.txt")
            dump = work / f"dump-q{q}"
            dump.mkdir()
            whole, stage = [], []
            for k in range(2):
                full = app_insns(fw, binary, enc.counter, symbols, folder, n, dump if k == 0 else None)
                none = app_insns(fw, binary, enc.counter, symbols, folder, 0)
                whole.append((full.insns - none.insns) / (n * h * w))
                stage.append((full.encode - none.encode) / (n * h * w))
            standalone, _ = insns_per_pixel(enc, raw, (h, w, 3), q, n, "neon")
            identical = all((dump / f"f{i:03d}.raw.jpg").read_bytes() == encode(p, q) for i, p in enumerate(frames_px))
            rows.append({"quality": q, "frames": n, "app_ipp": whole, "stage_ipp": stage, "encoder_ipp": standalone,
                         "model_ipp": ns * target.device.clock_mhz * 1e-3 * ipc, "model_from": ns_from,
                         "identical": identical})
    return rows


def app_table(rows: list[dict[str, object]], target: Target, ipc: float) -> str:
    cols = ["Q", "frames", "edge app instr/pixel, whole (2 counts)", "edge app encode stage instr/pixel (2 counts)",
            "standalone encoder instr/pixel",
            f"model instr/pixel (jpeg_ns_per_pixel x {target.device.clock_mhz:g} MHz x IPC {ipc:g})",
            "encode stage / model", "standalone / model", "app JPEGs = Pillow's"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        whole = [float(x) for x in r["app_ipp"]]  # type: ignore[attr-defined]
        stage = [float(x) for x in r["stage_ipp"]]  # type: ignore[attr-defined]
        model, encoder = float(r["model_ipp"]), float(r["encoder_ipp"])  # type: ignore[arg-type]
        cells = [r["quality"], r["frames"], " / ".join(f"{a:.1f}" for a in whole),
                 " / ".join(f"{a:.1f}" for a in stage), f"{encoder:.1f}", f"{model:.1f}",
                 f"{np.mean(stage) / model:.2f}", f"{encoder / model:.2f}", "yes" if r["identical"] else "no"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def table(rows: list[dict[str, object]], target: Target, ipc: float) -> str:
    cols = ["frames", "Q", "target libjpeg-turbo bytes", "Pillow bytes", "target / Pillow",
            "first frame byte-identical", "instr/pixel NEON", "instr/pixel C",
            f"ns/pixel NEON ({target.device.clock_mhz:g} MHz, IPC {ipc:g})", "ns/pixel C",
            "Pillow encode ms/frame (host)"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [r["frames"], r["quality"], f"{r['target_bytes']:.0f}", f"{r['pillow_bytes']:.0f}",
                 f"{r['ratio']:.4f}", "yes" if r["identical"] else "no", f"{r['neon_ipp']:.1f}",
                 f"{r['c_ipp']:.1f}", f"{r['neon_ns']:.1f}", f"{r['c_ns']:.1f}", f"{r['pillow_ms']:.3f}"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def lpr_options(target: Target, quick: bool, qualities: Sequence[int] = QUALITIES) -> str:
    """`jpeg_options` on the licence-plate reader (large) over test frames, with the raw frame's row for reference."""
    from splitsdk.examples.lpr import data as lpr
    from splitsdk.examples.lpr import weights_path
    from splitsdk.examples.lpr.plate import encode as plate_labels
    from splitsdk.graph import load_graph
    from splitsdk.plan.accuracy import get_metric, replay
    from splitsdk.plan.jpeg import jpeg_options

    graph = load_graph(str(weights_path("large")))
    pixels, texts = lpr.generate(2, 16 if quick else 64)
    x, y = pixels.astype(np.float32) / 255.0, np.stack([plate_labels(t) for t in texts])
    raw_bytes = pixels[0].size
    raw_acc = get_metric("lpr_exact")(replay(graph, x, lambda _n, _t, v: v), y)
    options = jpeg_options(graph, x, target, qualities, labels=y, metric="lpr_exact")
    lines = [f"| frame | bytes (mean) | / raw | encode ms ({target.name}, modelled) | decoded-plate agreement % | "
             "exact plates % |", "|---|---|---|---|---|---|",
             f"| raw RGB | {raw_bytes} | 1.000 | 0 | 100.0 | {raw_acc:.1f} |"]
    for o in options:
        lines.append(f"| JPEG Q{o.quality} | {o.mean_bytes:.0f} | {o.mean_bytes / raw_bytes:.3f} | {o.encode_ms:.2f} | "
                     f"{o.agreement:.1f} | {o.accuracy:.1f} |")
    return f"{len(x)} licence-plate test frames, lpr_large; {options[0].source}.\n\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer frames")
    p.add_argument("--target", default="cortex-a7")
    p.add_argument("--ipc", type=float, default=1.0, help="instructions per cycle assumed for ns/pixel")
    p.add_argument("--app-only", action="store_true", help="only the edge app's encode cost (5.)")
    args = p.parse_args(argv)
    target = load_target(args.target)
    app = app_rows(target, args.quick, args.ipc, (75,) if args.quick else QUALITIES)
    print(f"The generated edge app (CLOUD-ONLY+JPEG bundle) on {app[0]['frames']} licence-plate frames 128x256 RGB "
          f"under qemu-arm, NEON forced; model: {app[0]['model_from']}.\n")
    print(app_table(app, target, args.ipc) + "\n")
    if args.app_only:
        return 0
    rows = bench(target, args.quick, args.ipc)
    print(f"Target libjpeg-turbo: the {target.name} sysroot's, under qemu-arm; host: {pillow_jpeg()}.\n")
    print(table(rows, target, args.ipc))
    colour = [r for r in rows if "RGB" in str(r["frames"])]
    if colour:
        mean_ipp = float(np.mean([r["neon_ipp"] for r in colour]))
        print(f"\nMean NEON instructions per pixel over the RGB qualities: {mean_ipp:.1f} -> "
              f"{mean_ipp / (target.device.clock_mhz * 1e-3) / args.ipc:.1f} ns/pixel at "
              f"{target.device.clock_mhz:g} MHz, IPC {args.ipc:g}.")
    print("\n" + lpr_options(target, args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
