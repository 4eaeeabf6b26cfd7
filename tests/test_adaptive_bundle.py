"""The multi-split bundle of a split set: an edge chain of segments and one cloud half per split, verified per split,
served by a real receiver that routes each FRAME by its split."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from plan_factory import forced_plan, make_plan

from splitsdk.convert.chain import convert_split_set
from splitsdk.convert.convert import convert_plan
from splitsdk.errors import BundleError
from splitsdk.plan.schema import SplitSet
from splitsdk.plan.uplink import parse_uplink
from splitsdk.wire.bundle import load_bundle

UPLINK = "1mbit..20mbit"
MAX_SPLIT = 5  # the classifier head stays in the cloud (EDGE-ONLY would win every rate on this small model)
POST = {"kind": "raw"}


def ladder_model(path: Path) -> Path:
    """64x64x3 -> a cheap strided conv (a large cut) -> three heavier convs -> GAP (a tiny cut) -> dense."""
    import keras

    keras.utils.set_random_seed(0)
    L = keras.layers
    x = inp = keras.Input((64, 64, 3), name="img")
    x = L.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="c1")(x)
    x = L.Conv2D(32, 3, strides=2, padding="same", activation="relu", name="c2")(x)
    x = L.Conv2D(128, 3, padding="same", activation="relu", name="c3")(x)
    x = L.Conv2D(192, 3, padding="same", activation="relu", name="c4")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    x = L.Dense(10, name="fc")(x)
    keras.Model(inp, x, name="ladder").save(path)
    return path


def split_set_for(model: Path, plan_path: Path, uplink: str = UPLINK) -> SplitSet:
    """The split set of `model` on cortex-a7 over `uplink`, as `splitsdk plan --uplink LOW..HIGH` makes it (random
    calibration inputs, RTT 10 ms, the classifier head kept in the cloud: `--cloud-ops Dense`, split <= MAX_SPLIT).
    `plan_path`: the plan the bundle is converted for (unused here: the set is planned from the model)."""
    from splitsdk.plan import Constraints, plan_model
    from splitsdk.plan.build import representative_rate
    from splitsdk.profile.types import Link

    u = parse_uplink(uplink)
    plan = plan_model(str(model), "cortex-a7", Link(representative_rate(u), 10.0), Constraints(cloud_ops=("Dense",)),
                      exact=None, jpeg=(), uplink=u)
    assert plan.split_set is not None and max(plan.split_set.splits) <= MAX_SPLIT
    return plan.split_set


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("adaptive")
    model = ladder_model(root / "ladder.keras")
    plan = make_plan(model, root / "plan.json")
    split_set = split_set_for(model, plan)
    report = convert_split_set(plan, split_set, model, root / "bundle", postprocess=POST)
    return {"root": root, "model": model, "plan": plan, "set": split_set, "report": report,
            "bundle": load_bundle(root / "bundle")}


def test_the_set_has_a_shallow_and_a_deep_split(work: dict[str, Any]) -> None:
    s = work["set"]
    assert len(s.splits) >= 2 and s.expected_ms <= s.best_static_ms


def test_the_chain_stores_each_layer_once_and_recomposes_every_split(work: dict[str, Any]) -> None:
    bundle, report = work["bundle"], work["report"]
    m = bundle.manifest
    assert m.schema_version == 2 and [s.split for s in m.splits] == list(work["set"].splits)
    chain = m.splits[-1].segments
    assert [seg.file for seg in chain] == [f"segment{k}.tflite" for k in work["set"].splits if k > 0]
    for s in m.splits:  # each member runs a prefix of the chain and has its own cloud half
        assert s.segments == chain[: len(s.segments)] and (bundle.root / s.cloud_model).is_file()
    assert sorted(p.name for p in bundle.root.glob("*.tflite")) == sorted(seg.file for seg in chain)
    assert chain[0].inputs == () and all(seg.inputs for seg in chain[1:])  # fed by the frame, then by a cut
    assert m.crossing == m.splits[0].crossing and m.edge_model == m.splits[0].segments[-1].file
    for check in report.checks:  # measured on held-out frames, next to the member's float simulation
        assert check.output_mse <= check.bound and check.agreement == 1.0


def test_each_split_equals_its_single_split_bundle(work: dict[str, Any]) -> None:
    """Split k of the chain and a bundle converted from a plan of split k alone give the same outputs
    within the convert bound (same weights, same wire bits)."""
    from splitsdk.cloud.model import load_cloud_runner
    from splitsdk.wire.edge import EdgeChain, EdgeModel

    root, bundle = work["root"], work["bundle"]
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (4, *bundle.input.shape)).astype(np.uint8)
    chain = EdgeChain(bundle)
    for member, check in zip(work["set"].members, work["report"].checks, strict=True):
        k = member.split_index
        single_dir = root / f"single{k}"
        plan = forced_plan(work["model"], root / f"plan{k}.json", k, crossing_bits=dict(member.crossing_bits))
        convert_plan(plan, work["model"], single_dir, postprocess=POST)
        single = load_bundle(single_dir)
        a = _cloud(load_cloud_runner(bundle.member(k)), bundle.member(k), [chain.run(x, k) for x in images])
        b = _cloud(load_cloud_runner(single), single, [EdgeModel(single).run(x) for x in images])
        assert float(np.mean((a - b) ** 2)) <= 4 * check.bound


def _cloud(runner: Any, bundle: Any, outputs: list[list[np.ndarray]]) -> np.ndarray:
    from splitsdk.wire.packing import pack, requantize_lut, unpack_dequantize

    ins = [np.stack([unpack_dequantize(pack(requantize_lut(o[i], c.lut_table), c.bits), c.shape, c.bits, c.scale,
                                       c.zero_point) for o in outputs]) for i, c in enumerate(bundle.crossing)]
    return np.asarray(runner(ins)[0])


def test_a_real_receiver_routes_frames_by_split_and_refuses_an_unknown_one(work: dict[str, Any]) -> None:
    from splitsdk.toolchain.emulate import ReceiverProcess
    from splitsdk.wire.client import ReceiverRefused
    from splitsdk.wire.edge import EdgeChain, EdgeClient, frame_from_edge_outputs

    bundle = work["bundle"]
    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, (3, *bundle.input.shape)).astype(np.uint8)
    chain = EdgeChain(bundle)
    with ReceiverProcess(bundle) as receiver:
        cameras = {k: EdgeClient(bundle, "127.0.0.1", receiver.port, f"cam-{k}", split=k) for k in bundle.split_indices}
        bad = EdgeClient(bundle, "127.0.0.1", receiver.port, "cam-bad")
        try:
            for n, image in enumerate(images):
                for k, camera in cameras.items():
                    got = json.loads(camera.infer(image).body)["outputs"][0]
                    want = _cloud(_runner(bundle, k), bundle.member(k), [chain.run(image, k)])[0]
                    assert np.allclose(got, want, atol=1e-5)
                if n == 1:  # a frame naming a split the bundle does not have: that camera alone is refused
                    frame = frame_from_edge_outputs(bundle, chain.run(image, bundle.split_indices[0]), 0,
                                                    split=bundle.split_indices[0])
                    with pytest.raises(ReceiverRefused, match="split 999"):
                        bad.client.send_frame(dataclasses.replace(frame, split=999))
        finally:
            for camera in [*cameras.values(), bad]:
                camera.close()
        with pytest.raises(BundleError, match="no split 999"):
            EdgeClient(bundle, "127.0.0.1", receiver.port, "cam-x", split=999)


_RUNNERS: dict[int, Any] = {}


def _runner(bundle: Any, k: int) -> Any:
    from splitsdk.cloud.model import load_cloud_runner

    if k not in _RUNNERS:
        _RUNNERS[k] = load_cloud_runner(bundle.member(k))
    return _RUNNERS[k]


def test_the_python_camera_follows_a_two_step_link_and_every_frame_gets_one_result(work: dict[str, Any]) -> None:
    """Under a 20 -> 1 Mbit/s schedule (link shaper, real receiver process) the camera switches from the shallow
    split to the deep one; each frame gets exactly one RESULT (seq by seq, one stored row each), none lost."""
    import sqlite3

    from splitsdk.toolchain.emulate import ReceiverProcess
    from splitsdk.toolchain.linkshaper import LinkShaper, Step
    from splitsdk.wire.edge import AdaptiveCamera, drive

    bundle = work["bundle"]
    shallow, deep = bundle.split_indices[0], bundle.split_indices[-1]
    rng = np.random.default_rng(5)
    images = list(rng.integers(0, 256, (4, *bundle.input.shape)).astype(np.uint8))
    with ReceiverProcess(bundle) as receiver:
        with LinkShaper(("127.0.0.1", receiver.port), [Step(1.5, 20.0, 4.0), Step(60.0, 1.0, 4.0)]) as shaper:
            camera = AdaptiveCamera(bundle, *shaper.address, "adaptive-cam", pace=True)
            try:
                records = drive(camera, images, duration_s=4.0, max_frames=200)
            finally:
                camera.close()
            assert receiver.db is not None
            for _ in range(100):  # the STATS crosses the shaper and is stored after the camera has gone
                with sqlite3.connect(receiver.db) as conn:
                    stats = [json.loads(r[0]) for r in conn.execute(
                        "SELECT stats FROM device_stats WHERE device_id = ?", ("adaptive-cam",))]
                if stats:
                    break
                time.sleep(0.1)
        with sqlite3.connect(receiver.db) as conn:
            stored = conn.execute("SELECT seq, split FROM results WHERE device_id = ? ORDER BY seq",
                                  ("adaptive-cam",)).fetchall()
    assert [r.result.seq for r in records] == [r.seq for r in records] == list(range(len(records)))
    assert [s for s, _ in stored] == list(range(len(records)))  # one stored row per frame: none lost, none twice
    assert [k for _, k in stored] == [r.split for r in records]  # each row records the split it was sent at
    used = [r.split for r in records if not r.probe]
    assert used[0] == shallow and used[-1] == deep and camera.switches >= 1
    assert stats and stats[-1]["splits"]["switches"] == camera.switches
    assert sum(stats[-1]["splits"]["frames"].values()) == len(records)


def test_metrics_count_frames_per_split_and_the_cameras_switches(work: dict[str, Any], tmp_path: Path) -> None:
    import urllib.request

    from test_receiver import ReceiverThread

    from splitsdk.cloud.config import ReceiverConfig
    from splitsdk.wire.client import WireClient
    from splitsdk.wire.edge import EdgeChain, frame_from_edge_outputs

    bundle = work["bundle"]
    cfg = ReceiverConfig(listen="127.0.0.1:0", db=tmp_path / "r.sqlite", insecure_plain_tcp=True,
                         metrics="127.0.0.1:0").validate()
    srv = ReceiverThread(bundle, cfg, None)
    chain = EdgeChain(bundle)
    image = np.zeros(bundle.input.shape, np.uint8)
    plan = [bundle.split_indices[0], bundle.split_indices[-1], bundle.split_indices[-1], bundle.split_indices[0]]
    try:
        with WireClient("127.0.0.1", srv.port) as client:
            client.hello("cam-m", bundle.plan_sha256)
            for seq, k in enumerate(plan):
                assert client.send_frame(frame_from_edge_outputs(bundle, chain.run(image, k), seq, split=k)).seq == seq
        text = urllib.request.urlopen(f"http://127.0.0.1:{srv.receiver.metrics_port}/metrics", timeout=5).read()
    finally:
        srv.stop()
    lines = text.decode().splitlines()
    for k in set(plan):
        assert f'splitsdk_frames_total{{split="{k}"}} {plan.count(k)}' in lines
    assert "splitsdk_split_changes_total 2" in lines


def test_edge_sim_names_each_frames_split_and_refuses_an_unknown_one(work: dict[str, Any], tmp_path: Path) -> None:
    import subprocess
    import sys

    from splitsdk.toolchain.emulate import ReceiverProcess

    bundle = work["bundle"]
    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(6)
    for i in range(3):
        np.save(frames / f"{i}.npy", rng.integers(0, 256, bundle.input.shape).astype(np.uint8))

    def edge_sim(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "splitsdk", "edge-sim", str(bundle.root), "--server", f"127.0.0.1:{receiver.port}",
             "--frames", str(frames), "--json", *extra], capture_output=True, text=True, timeout=300,
        )  # fmt: skip

    with ReceiverProcess(bundle) as receiver:
        adaptive = edge_sim("--device-id", "sim-adaptive")
        forced = edge_sim("--device-id", "sim-forced", "--split", str(bundle.split_indices[-1]))
        bad = edge_sim("--device-id", "sim-bad", "--split", "999")
    for proc in (adaptive, forced):
        assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in adaptive.stdout.splitlines() if line.startswith("{")]
    assert [r["seq"] for r in rows] == [0, 1, 2] and {r["split"] for r in rows} <= set(bundle.split_indices)
    rows = [json.loads(line) for line in forced.stdout.splitlines() if line.startswith("{")]
    assert [r["split"] for r in rows] == [bundle.split_indices[-1]] * 3
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "--split: 999 is not a split of" in bad.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.update(schema_version=1), "splits: needs schema_version 2"),
        (lambda m: m["splits"].reverse(), "splits: split indices must ascend"),
        (lambda m: m.update(splits=m["splits"][:1]), "splits: a multi-split bundle has at least 2 members"),
        (lambda m: m["splits"][-1].update(segments=[]), "segments: is empty"),
        (lambda m: m["splits"][-1]["segments"][-1].update(file="../x.tflite"), "segments[1].file: must be a file name"),
        (lambda m: m["splits"][-1]["segments"][-1].update(file="gone.tflite"), "segments[1].file: names"),
        (lambda m: m["splits"][0].update(cloud_model="cloud99.keras"), "splits[0]: must be what the top-level"),
        (lambda m: m["splits"][-1]["crossing"][0].update(bits=9), "crossing[0].bits"),
    ],
)
def test_a_bad_splits_list_is_refused_naming_the_field(
    work: dict[str, Any], tmp_path: Path, change: Any, message: str
) -> None:
    import shutil

    folder = tmp_path / "bundle"
    shutil.copytree(work["bundle"].root, folder)
    data = json.loads((folder / "manifest.json").read_text())
    change(data)
    (folder / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(BundleError) as err:
        load_bundle(folder)
    assert message in str(err.value) and str(err.value).startswith(str(folder / "manifest.json"))
    assert "\n" not in str(err.value)


def test_a_multi_split_bundle_goes_to_ray_serve_one_application_per_split(work: dict[str, Any]) -> None:
    """Each member's cloud half is its own Serve application (served for real in test_fleet); `deploy` takes
    the split of a multi-split bundle and refuses a call without one, before it reaches any cluster."""
    from splitsdk.cloud.config import EngineConfig
    from splitsdk.cloud.engine_ray import app_name, cloud_halves, deploy
    from splitsdk.errors import ReceiverError

    bundle = work["bundle"]
    assert cloud_halves(bundle) == list(bundle.split_indices)
    base = f"splitsdk-{bundle.plan_sha256[:16]}"
    assert [app_name(bundle, EngineConfig(), k) for k in cloud_halves(bundle)] == [
        f"{base}-split{k}" for k in bundle.split_indices
    ]
    with pytest.raises(ReceiverError, match="deployed one split at a time"):
        deploy(bundle, EngineConfig(kind="ray", ray_address="127.0.0.1:9"))


def test_profile_refuses_a_multi_split_bundle_in_one_line(work: dict[str, Any], tmp_path: Path) -> None:
    """Its segments are separate models whose ops name no layer of the plan: refused before any work, saying
    what to profile instead (not a partial table of the first segment)."""
    import subprocess
    import sys

    from splitsdk.errors import ProfileError
    from splitsdk.profile.device import profile_edge

    root = work["root"] / "bundle"
    with pytest.raises(ProfileError, match=r"a multi-split bundle \(splits .*\): profile times a single-split"):
        profile_edge(tmp_path / "no-firmware", root)
    proc = subprocess.run([sys.executable, "-m", "splitsdk", "profile", str(tmp_path / "fw"), str(root), "-o",
                           str(tmp_path / "t.csv")], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and proc.stderr.count("\n") == 1 and "a multi-split bundle" in proc.stderr, proc.stderr
    assert not (tmp_path / "t.csv").exists()
