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


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """The camera net saved here, planned (cortex-a7, 50 Mbit/s: stem_conv + pool1 on the edge), converted and
    built for cortex-a7: (model, bundle, firmware). `--modes` converts the edge again from this model."""
    from splitsdk.convert import convert_plan
    from splitsdk.examples.camera_net import build
    from splitsdk.plan import plan_model

    work = tmp_path_factory.mktemp("profile-own")
    model = work / "camera_net.keras"
    build().save(model)
    convert_plan(plan_model(model, "cortex-a7", Link(50.0), exact=None), model, work / "bundle", samples=16,
                 verify=False)
    return model, work / "bundle", shared_firmware(work, work / "bundle", "cortex-a7")


MODES = ["int16x8", "dynamic_int8", "float32"]  # cortex-a7's besides int8, which the shipped model runs
MODE_PAIRS = {(8, 8), (8, 16), (8, 32), (32, 32)}


def _check_every_mode_feeds_the_profile(model: Path, table_file: Path) -> None:
    """Every (wbits, abits) the planner prices for the edge layers comes from the table: each pair's own
    row, or the row of the pair its runtime mode runs the same way (4-bit weights run as int8)."""
    from splitsdk.graph import load_graph
    from splitsdk.profile.build import edge_bit_pairs
    from splitsdk.target import load_target

    table = load_measured(table_file)
    assert table.source is not None and list(table.source.modes) == MODES
    for layer in ("stem_conv", "pool1"):
        assert set(table.by_bits[layer]) == MODE_PAIRS
        assert all(ms > 0 for ms in table.by_bits[layer].values())
    graph = load_graph(model)
    profile = build_profile(graph, "cortex-a7", "cloud-gpu", measured_edge=table_file)
    for layer in ("stem_conv", "pool1"):
        row = table.by_bits[layer]
        for pair, same in [((8, 16), (8, 16)), ((4, 16), (8, 16)), ((8, 32), (8, 32)), ((2, 32), (8, 32)),
                           ((32, 32), (32, 32)), ((6, 8), (8, 8))]:
            assert profile.edge_ms(layer, *pair) == pytest.approx(row[same]), (layer, pair)
    pairs = edge_bit_pairs(load_target("cortex-a7"))
    total = len(graph.topological_order()) * len(pairs)
    assert f"({2 * len(pairs)}/{total} values measured)" in profile.source


@pytest.mark.requires_qemu
def test_modes_measure_each_precision_the_planner_may_choose(own: tuple[Path, Path, Path], tmp_path: Path) -> None:
    model, bundle, fw = own
    out = tmp_path / "modes.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "splitsdk", "profile", str(fw), str(bundle), "--qemu", "--runs", "2", "--warmup", "1",
         "--modes", "all", "--model", str(model), "-o", str(out)],
        capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr
    for mode in MODES:
        assert f"\n{mode}:\n" in proc.stdout
    assert "not measured" not in proc.stdout
    _check_every_mode_feeds_the_profile(model, out)
    table = load_measured(out)
    assert table.source is not None and "float32" in table.source.note and "random frames" in table.source.note


def test_modes_refuse_what_they_cannot_do(own: tuple[Path, Path, Path], tmp_path: Path) -> None:
    model, bundle, fw = own
    with pytest.raises(ProfileError, match="--modes: needs --model"):
        profile_edge(fw, bundle, modes="all")
    with pytest.raises(ProfileError, match="--modes: cortex-a7 runs no mode 'int4'"):
        profile_edge(fw, bundle, modes="int8,int4", model=model)
    from splitsdk.examples.camera_net import build

    other = tmp_path / "other.keras"  # another save of the architecture: its own weights and SHA-256
    build().save(other)
    with pytest.raises(ProfileError, match="--model: .*model.sha256 does not match .*other.keras"):
        profile_edge(fw, bundle, modes="float32", model=other, out=tmp_path / "x.csv")
    # the example bundle's plan.json is of an older schema: its edge cannot be converted again
    with pytest.raises(ProfileError, match="schema_version 1 is from an older splitsdk.*other modes"):
        profile_edge(fw, EXAMPLE, modes="float32", model=model, out=tmp_path / "x.csv")
    with pytest.raises(ProfileError, match="--calib: .*no such file"):
        profile_edge(fw, bundle, modes="float32", model=model, calib=tmp_path / "none.npz", out=tmp_path / "x.csv")
    assert not (tmp_path / "x.csv").exists()
    # the output's folder is checked before any work
    proc = subprocess.run(
        [sys.executable, "-m", "splitsdk", "profile", str(fw), str(bundle), "-o", str(tmp_path / "no" / "x.csv")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "no such folder" in proc.stderr


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
def test_camera_icount_profile_is_deterministic(own: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """One boot (~15 s), two profiles of every mode: instruction-count time repeats (up to timer interrupts)."""
    from splitsdk.camera.image import build_image
    from splitsdk.camera.qemu import camera_down, camera_up

    model, bundle, fw = own
    image = build_image(tmp_path / "image", None, target="cortex-a7")
    camera_up(image.root, icount=0, timeout_s=300)
    try:
        tables = [tmp_path / f"camera-{i}.csv" for i in range(2)]
        runs = [profile_edge(fw, bundle, camera_image=image.root, runs=5, warmup=1, out=t, modes="all", model=model)
                for t in tables]
    finally:
        camera_down(image.root)
    first, second = ({(t.layer, m.mode): t.ms for m in r.modes for t in m.layers} | {(t.layer, "shipped"): t.ms
                     for t in r.layers} for r in runs)
    assert [t.layer for t in runs[0].layers] == ["stem_conv", "pool1"]
    assert set(first) == set(second) == {(n, m) for n in ("stem_conv", "pool1") for m in ["shipped", *MODES]}
    # the instructions of the app repeat exactly; what varies is the kernel's timer interrupts that fall
    # into an op (a tick every 4 ms of virtual time, its phase set by when the SSH command arrived, in
    # host time): a few thousand instructions per tick, under 0.5% of these ops
    for key in first:
        assert first[key] == pytest.approx(second[key], rel=5e-3), key
    src = runs[0].source
    assert src.clock == "camera-icount" and src.icount_shift == 0
    assert "not Cortex-A7 milliseconds" in src.describe()
    _check_every_mode_feeds_the_profile(model, tables[0])

    # the camera's table feeds back into plan, and both runs' tables make the same plan
    from splitsdk.plan import plan_model
    from splitsdk.plan.report import comparisons

    plans = [plan_model(model, "cortex-a7", Link(50.0), exact=None, edge_profile=t) for t in tables]
    assert plans[0].profile_source.startswith(f"edge=measured:{tables[0]}+analytic(")
    assert {c.layer for c in comparisons(plans[0])} == {"stem_conv", "pool1"}
    assert any(n.startswith("edge latency of 2 of ") and "not Cortex-A7 milliseconds" in n
               for n in plans[0].selection.notes)
    a, b = (p.solution for p in plans)
    assert (a.split_index, a.weight_bits, a.activation_bits) == (b.split_index, b.weight_bits, b.activation_bits)
    assert a.predicted.edge_ms == pytest.approx(b.predicted.edge_ms, rel=5e-3)
