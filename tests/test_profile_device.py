"""`splitsdk profile`: the example firmware times its own edge model (natively for `host`, under qemu-arm
for cortex-a7, on the emulated camera with -icount), the ops are mapped to the plan's edge layers, and the
table feeds back into `plan` (measured where it has a layer, analytic elsewhere)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from edge_app_helpers import shared_firmware

from splitsdk.errors import ProfileError
from splitsdk.profile import build_profile, load_measured
from splitsdk.profile.device import bundle_edge, profile_edge
from splitsdk.profile.types import Link

pytestmark = [pytest.mark.requires_toolchain, pytest.mark.slow]

EXAMPLE = Path(__file__).resolve().parent.parent / "firmware_examples" / "camera-net-cortex-a7" / "bundle"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # our own folder: shared_dir's fw-<target> names hold the small test bundle's builds
    return tmp_path_factory.mktemp("profile-example")


@pytest.fixture(scope="module")
def host_table(base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    fw = shared_firmware(base, EXAMPLE, "host")
    out = tmp_path_factory.mktemp("profile") / "host.csv"
    profile_edge(fw, EXAMPLE, runs=3, warmup=1, out=out)
    return out


def test_host_profile_covers_every_edge_layer(host_table: Path) -> None:
    table = load_measured(host_table)
    edge = bundle_edge(EXAMPLE)
    assert table.layers() == set(edge.layers) == {"stem_conv", "pool1"}
    assert table.by_bits["stem_conv"] == {(8, 8): pytest.approx(table.by_bits["stem_conv"][(8, 8)])}
    assert all(ms > 0 for row in table.by_bits.values() for ms in row.values())
    src = table.source
    assert src is not None and src.clock == "host" and src.target == "host" and src.runs == 3
    assert src.runtime.tflite == "2.14.1" and not src.runtime.xnnpack and not src.runtime.neon
    # the rows add up to the ops of one invocation: no more than the whole invoke
    assert sum(r[(8, 8)] for r in table.by_bits.values()) <= src.invoke_ms * 1.5


@pytest.mark.requires_qemu
def test_qemu_arm_profile_says_it_is_emulated_wall_time(base: Path, tmp_path: Path) -> None:
    fw = shared_firmware(base, EXAMPLE, "cortex-a7")
    out = tmp_path / "a7.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "splitsdk", "profile", str(fw), "--bundle", str(EXAMPLE), "--qemu", "--runs", "2",
         "--warmup", "1", "-o", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "emulated wall time under qemu-arm" in proc.stdout
    text = out.read_text()
    assert text.startswith("# splitsdk-profile: ") and "qemu-arm user mode" in text
    table = load_measured(out)
    assert table.layers() == {"stem_conv", "pool1"}
    assert table.source is not None and table.source.clock == "qemu-user"
    # Debian's armhf TFLite is a baseline build: its ELF attributes carry no Advanced SIMD
    assert table.source.runtime.neon is False and "no Advanced SIMD" in table.source.runtime.how
    # a firmware for an emulated target cannot run natively
    proc = subprocess.run(
        [sys.executable, "-m", "splitsdk", "profile", str(fw), "--bundle", str(EXAMPLE), "--host", "-o", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0 and proc.stderr.count("\n") == 1 and "use --qemu" in proc.stderr


def test_the_table_feeds_back_into_plan(host_table: Path, tmp_path: Path) -> None:
    from splitsdk.examples.camera_net import build
    from splitsdk.graph import load_graph
    from splitsdk.plan import plan_model
    from splitsdk.plan.report import comparisons, markdown

    model = tmp_path / "camera_net.keras"
    build().save(model)
    plan = plan_model(model, "cortex-a7", Link(50.0), exact=None, edge_profile=host_table)
    table = load_measured(host_table)
    graph = load_graph(model)
    analytic = build_profile(graph, "cortex-a7", "cloud-gpu")
    s = plan.solution
    expected = 0.0
    for name in s.edge_layers:
        pair = (s.weight_bits.get(name, 8), s.activation_bits[name])
        same = [(w, pair[1]) for w in (8, 6, 4, 2) if (w, pair[1]) != pair]
        measured = table.find(name, pair, same) if pair[1] == 8 else None
        expected += measured if measured is not None else analytic.edge_ms(name, *pair)
    assert s.predicted.edge_ms == pytest.approx(expected)
    if set(s.edge_layers) == table.layers():  # the edge runs exactly the profiled layers: the measured sum
        assert s.predicted.edge_ms == pytest.approx(sum(r[(8, 8)] for r in table.by_bits.values()))
    assert plan.profile_source.startswith(f"edge=measured:{host_table}+analytic(")
    assert any(n.startswith("edge latency of 2 of ") for n in plan.selection.notes)
    compared = {c.layer: c for c in comparisons(plan)}
    assert set(compared) == {"stem_conv", "pool1"}
    assert compared["pool1"].modelled_ms == pytest.approx(analytic.edge_ms("pool1", 8, 8))
    assert compared["pool1"].measured_ms == pytest.approx(table.by_bits["pool1"][(8, 8)], rel=1e-5)
    assert "## Edge latency: measured vs analytic" in markdown(plan)
    # host numbers on a cortex-a7 plan: the build the target's rates assume differs (NEON)
    assert any(n.startswith("warning: the measured runtime") for n in plan.selection.notes)


def test_profile_refuses_a_bundle_without_edge_layers(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="--runs: must be >= 1"):
        profile_edge(tmp_path, EXAMPLE, runs=0)
    with pytest.raises(ProfileError, match="neither a firmware"):
        profile_edge(tmp_path, EXAMPLE, runs=1)


@pytest.mark.requires_qemu
@pytest.mark.timeout(900)
def test_camera_icount_profile_is_deterministic(base: Path, tmp_path: Path) -> None:
    """One boot (~15 s), two profiles: instruction-count time repeats (up to timer interrupts)."""
    from splitsdk.camera.image import build_image
    from splitsdk.camera.qemu import camera_down, camera_up

    fw = shared_firmware(base, EXAMPLE, "cortex-a7")
    image = build_image(tmp_path / "image", None, target="cortex-a7")
    camera_up(image.root, icount=0, timeout_s=300)
    try:
        tables = [tmp_path / f"camera-{i}.csv" for i in range(2)]
        runs = [profile_edge(fw, EXAMPLE, camera_image=image.root, runs=5, warmup=1, out=t) for t in tables]
    finally:
        camera_down(image.root)
    first, second = ({t.layer: t.ms for t in r.layers} for r in runs)
    assert list(first) == list(second) == ["stem_conv", "pool1"]
    # the instructions of the app repeat exactly; what varies is the kernel's timer interrupts that fall
    # into an op (a tick every 4 ms of virtual time, its phase set by when the SSH command arrived, in
    # host time): a few thousand instructions per tick, under 0.5% of these ops
    for layer in first:
        assert first[layer] == pytest.approx(second[layer], rel=5e-3)
    src = runs[0].source
    assert src.clock == "camera-icount" and src.icount_shift == 0
    assert "not Cortex-A7 milliseconds" in src.describe()

    # the camera's table feeds back into plan, and both runs' tables make the same plan
    from splitsdk.examples.camera_net import build
    from splitsdk.plan import plan_model
    from splitsdk.plan.report import comparisons

    model = tmp_path / "camera_net.keras"
    build().save(model)
    plans = [plan_model(model, "cortex-a7", Link(50.0), exact=None, edge_profile=t) for t in tables]
    assert plans[0].profile_source.startswith(f"edge=measured:{tables[0]}+analytic(")
    assert {c.layer for c in comparisons(plans[0])} == {"stem_conv", "pool1"}
    assert any(n.startswith("edge latency of 2 of ") and "not Cortex-A7 milliseconds" in n
               for n in plans[0].selection.notes)
    a, b = (p.solution for p in plans)
    assert (a.split_index, a.weight_bits, a.activation_bits) == (b.split_index, b.weight_bits, b.activation_bits)
    assert a.predicted.edge_ms == pytest.approx(b.predicted.edge_ms, rel=5e-3)
