"""The generated C++ edge app for a multi-split bundle: it loads the segment chain, runs the segments up to the split
it chooses per frame, names that split in each FRAME, follows the uplink behind the link shaper (a real receiver
routing by split), and `--split K` forces one member. Its results equal the Python camera's for the same split
within one int8 step of the cut; the cortex-a7 cross build of the same project compiles and runs under qemu-arm."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from plan_factory import make_plan
from test_adaptive_bundle import POST, ladder_model, split_set_for

from splitsdk.convert.chain import convert_split_set
from splitsdk.toolchain.build import Firmware, build_firmware, load_firmware
from splitsdk.toolchain.emulate import AppRun, ReceiverProcess, app_args, app_command, parse_app_output
from splitsdk.wire.bundle import Bundle, load_bundle

pytestmark = [pytest.mark.requires_toolchain, pytest.mark.slow]

FRAMES = 4  # distinct frames in the folder (replayed with --loop)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The ladder model's multi-split bundle (zstd on every crossing), its host project and firmware, and frames."""
    from splitsdk.codegen import generate

    root = tmp_path_factory.mktemp("edge-adaptive")
    model = ladder_model(root / "ladder.keras")
    plan = make_plan(model, root / "plan.json")
    convert_split_set(plan, split_set_for(model, plan), model, root / "bundle", postprocess=POST, codec="zstd")
    bundle = load_bundle(root / "bundle")
    generate(root / "bundle", "host", root / "project")
    fw = build_firmware(root / "project", root / "fw", build_dir=root / "build")
    # raw frames and the .f32 model input the app reads: the Python camera's preprocessing of them, bit for bit
    rng = np.random.default_rng(7)
    raw = rng.integers(0, 256, (FRAMES, *bundle.input.shape)).astype(np.uint8)
    frames = root / "frames"
    frames.mkdir()
    for i, image in enumerate(raw):
        real = image.astype(np.float32) * np.float32(bundle.input.scale) + np.float32(bundle.input.offset)
        real.tofile(frames / f"frame{i:03d}.f32")
    return {"root": root, "bundle": bundle, "fw": fw, "frames": frames, "raw": raw}


def _args(work: dict[str, Any], fw: Firmware, port: int, n: int, extra: list[str]) -> list[str]:
    """app_args: --model is the firmware's deepest segment; the app loads every segment from that directory."""
    return app_args(fw, work["frames"], port, n=n, extra=["--loop", *extra])


def test_the_firmware_carries_every_segment_of_the_chain(work: dict[str, Any]) -> None:
    fw: Firmware = work["fw"]
    bundle: Bundle = work["bundle"]
    assert fw.model.name == bundle.manifest.edge_model
    shipped = sorted(p.name for p in fw.model.parent.glob("*.tflite"))
    assert shipped == sorted({g.file for k in bundle.split_indices for g in bundle.segments(k)})
    for name in shipped:  # byte for byte the bundle's
        assert (fw.model.parent / name).read_bytes() == (bundle.root / name).read_bytes()


@dataclass
class Run:
    app: AppRun
    stdout: str


def run_app(fw: Firmware, args: list[str]) -> Run:
    """The app to completion (bounded), what it printed parsed (results, stages, counters) and its stdout."""
    proc = subprocess.run(app_command(fw, args), capture_output=True, text=True, timeout=300, check=False)
    return Run(parse_app_output(proc.returncode, proc.stdout, proc.stderr), proc.stdout)


def _frame_lines(run: Run) -> list[dict[str, int]]:
    """The app's per-frame `frame seq=.. split=.. probe=.. bytes=..` lines (after its RESULT)."""
    rows = []
    for line in run.stdout.splitlines():
        if line.startswith("frame seq="):
            rows.append({k: int(v) for k, v in (kv.split("=") for kv in line.split()[1:])})
    return rows


def _stats(run: Run) -> dict[str, Any]:
    line = [ln for ln in run.stdout.splitlines() if ln.startswith("stats: ")][-1]
    return dict(json.loads(line.removeprefix("stats: ")))


def _stored(receiver: ReceiverProcess, device: str) -> tuple[list[int], list[dict[str, Any]]]:
    """The receiver database's result seqs for `device` (in order) and its STATS documents."""
    assert receiver.db is not None
    with sqlite3.connect(receiver.db) as conn:
        seqs = [r[0] for r in conn.execute("SELECT seq FROM results WHERE device_id = ? ORDER BY seq", (device,))]
        stats = [
            json.loads(r[0]) for r in conn.execute("SELECT stats FROM device_stats WHERE device_id = ?", (device,))
        ]
    return seqs, stats


def test_the_app_follows_a_two_step_link_and_every_frame_gets_one_result(work: dict[str, Any]) -> None:
    """20 -> 1 Mbit/s behind the link shaper: the app starts at the shallow split, switches to the deep one,
    and every frame it captured is answered exactly once (the receiver's database)."""
    from splitsdk.toolchain.linkshaper import LinkShaper, Step

    bundle: Bundle = work["bundle"]
    shallow, deep = bundle.split_indices[0], bundle.split_indices[-1]
    n = 60  # 3 s at 20 frames/s: half of it at each rate
    with ReceiverProcess(bundle) as receiver:
        with LinkShaper(("127.0.0.1", receiver.port), [Step(1.5, 20.0, 4.0), Step(60.0, 1.0, 4.0)]) as shaper:
            run = run_app(
                work["fw"],
                _args(
                    work,
                    work["fw"],
                    shaper.address[1],
                    n,
                    ["--device-id", "cpp-adaptive", "--realtime-fps", "20", "--queue-depth", "4"],
                ),
            )
            for _ in range(100):  # the STATS crosses the shaper and is stored after the app has gone
                seqs, stats = _stored(receiver, "cpp-adaptive")
                if stats:
                    break
                time.sleep(0.1)
        assert run.app.returncode == 0, run.app.stderr[-2000:]
    rows = _frame_lines(run)
    answered = [r.seq for r in run.app.results]
    assert [r["seq"] for r in rows] == answered and len(answered) == run.app.counters["sent"]
    assert run.app.counters["captured"] == n and len(answered) + run.app.counters["dropped"] == n
    assert seqs == answered == sorted(set(answered))  # one stored row per frame sent: none lost, none twice
    used = [r["split"] for r in rows if not r["probe"]]
    assert used[0] == shallow and used[-1] == deep
    splits = _stats(run)["splits"]
    assert splits["switches"] >= 1 and splits["forced"] is None and splits["uplink_mbps"] is not None
    assert splits["frames"] == {str(k): sum(r["split"] == k for r in rows) for k in bundle.split_indices}
    assert stats and stats[-1]["splits"] == splits  # the same counters in the STATS the receiver stored
    compressed = [r["bytes"] for r in rows if r["split"] == shallow]
    assert compressed and max(compressed) < bundle.member(shallow).wire_bytes  # zstd on the wire


def _cloud(bundle: Bundle, split: int, cuts: list[list[np.ndarray]]) -> np.ndarray:
    from splitsdk.cloud.model import load_cloud_runner
    from splitsdk.wire.packing import pack, requantize_lut, unpack_dequantize

    member = bundle.member(split)
    ins = [
        np.stack(
            [
                unpack_dequantize(
                    pack(requantize_lut(cut[i], c.lut_table), c.bits), c.shape, c.bits, c.scale, c.zero_point
                )
                for cut in cuts
            ]
        )
        for i, c in enumerate(member.crossing)
    ]
    return np.asarray(load_cloud_runner(member)(ins)[0])


def _check_forced(work: dict[str, Any], fw: Firmware, split: int, tmp: Path, n: int = FRAMES) -> None:
    """`--split K`: every FRAME names K, the STATS says forced K, the int8 cut the app computed is the Python
    camera's within one step, and each RESULT is the cloud half of K on exactly what the app sent."""
    from splitsdk.wire.edge import EdgeChain

    bundle: Bundle = work["bundle"]
    member = bundle.member(split)
    dump = tmp / f"dump{split}"
    dump.mkdir()
    device = f"cpp-split-{split}"
    with ReceiverProcess(bundle) as receiver:
        run = run_app(
            fw, _args(work, fw, receiver.port, n, ["--device-id", device, "--split", str(split), "--dump", str(dump)])
        )
        assert run.app.returncode == 0, run.app.stderr[-2000:]
        seqs, _ = _stored(receiver, device)
    assert [r["split"] for r in _frame_lines(run)] == [split] * n and seqs == list(range(n))
    splits = _stats(run)["splits"]
    assert splits["forced"] == split and splits["switches"] == 0 and splits["frames"][str(split)] == n
    chain = EdgeChain(bundle)
    for i, result in enumerate(run.app.results):
        name = result.frame
        got = [
            np.fromfile(dump / f"{name}.{k}.out", dtype=np.int8).reshape(c.shape) for k, c in enumerate(member.crossing)
        ]
        want = chain.run(work["raw"][int(name[5:8])], split)
        for g, w in zip(got, want, strict=True):  # the chain's cut: the Python camera's within one int8 step
            assert int(np.max(np.abs(g.astype(np.int16) - w.astype(np.int16)))) <= 1
        body = np.asarray(json.loads(result.body)["outputs"][0], dtype=np.float32)
        assert np.allclose(body, _cloud(bundle, split, [got])[0], atol=1e-5), f"split {split}, frame {i}"
        assert np.allclose(
            _cloud(bundle, split, [got])[0], _cloud(bundle, split, [want])[0], atol=_one_step_bound(bundle, split, want)
        )


def _one_step_bound(bundle: Bundle, split: int, cut: list[np.ndarray]) -> float:
    """How far the cloud half's outputs move when every int8 value of `cut` moves by one step (either way): the
    bound for results whose cuts differ by at most that."""
    ref = _cloud(bundle, split, [cut])[0]
    moved = [
        _cloud(bundle, split, [[np.clip(t.astype(np.int16) + d, -128, 127).astype(np.int8) for t in cut]])[0]
        for d in (-1, 1)
    ]
    return float(max(np.max(np.abs(m - ref)) for m in moved)) + 1e-5


def test_split_k_forces_each_member_and_matches_the_python_camera(work: dict[str, Any], tmp_path: Path) -> None:
    for split in work["bundle"].split_indices:
        _check_forced(work, work["fw"], split, tmp_path)


def test_an_unknown_split_is_refused_in_one_line(work: dict[str, Any]) -> None:
    run = run_app(work["fw"], _args(work, work["fw"], 9, 1, ["--split", "999"]))
    assert run.app.returncode == 2 and "Traceback" not in run.app.stderr
    have = ", ".join(map(str, work["bundle"].split_indices))
    assert (
        run.app.stderr.splitlines()[0]
        == f"splitsdk-edge: error: --split: split: 999 is not a split of this bundle (it has {have})"
    )


@pytest.mark.requires_qemu
def test_the_cortex_a7_build_compiles_and_runs_under_qemu(work: dict[str, Any], tmp_path: Path) -> None:
    from splitsdk.codegen import generate

    root: Path = work["root"]
    generate(root / "bundle", "cortex-a7", root / "project-arm")
    fw = load_firmware(build_firmware(root / "project-arm", root / "fw-arm", build_dir=root / "build-arm").root)
    assert fw.target == "cortex-a7"
    _check_forced(work, fw, work["bundle"].split_indices[-1], tmp_path, n=2)
