"""plan.json: round trip, determinism, the keys other tools read, and validation that names the field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from splitsdk.codec import encode
from splitsdk.errors import PlanError
from splitsdk.plan import PlanMeta, PlanProblem, load_plan, make_plan, save_plan
from splitsdk.plan.schema import Plan, dumps, validate
from splitsdk.plan.synthetic import random_problem_parts
from splitsdk.profile.types import Link

BITS = [2, 4, 8]


def _plan(seed: int = 4, memory: int = 10**6) -> Plan:
    graph, prof, sens = random_problem_parts(seed, 6, BITS)
    p = PlanProblem(graph, prof, sens, Link(5.0, 10.0), BITS, memory, max_error=5.0)
    return make_plan(p, PlanMeta("random", "ab" * 32, target="synthetic-edge", cloud="synthetic-cloud"))


def test_round_trip_and_deterministic(tmp_path: Path) -> None:
    plan = _plan()
    save_plan(plan, tmp_path / "a.json")
    save_plan(_plan(), tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    again = load_plan(tmp_path / "a.json")
    assert again == plan and dumps(again) == dumps(plan)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json"]  # no temp files left


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    d = encode(plan)
    assert isinstance(d, dict)
    return d


def test_has_the_keys_other_tools_read() -> None:
    d = plan_to_dict(_plan())
    assert d["schema_version"] == 3
    assert set(d["model"]) >= {"name", "sha256"}
    assert isinstance(d["target"], str)
    assert set(d["link"]) == {"uplink_mbps", "rtt_ms"}
    assert set(d["constraints"]) >= {"memory_bytes", "max_accuracy_drop"}
    s = d["solution"]
    assert set(s) >= {
        "kind",
        "split_index",
        "edge_layers",
        "crossing",
        "weight_bits",
        "activation_bits",
        "predicted",
        "reason",
    }
    assert set(s["predicted"]) >= {
        "edge_ms",
        "transmit_ms",
        "cloud_ms",
        "total_ms",
        "edge_weight_bytes",
        "peak_activation_bytes",
        "error",
    }
    for c in s["crossing"]:  # the quantisation is the bundle manifest's, after convert calibrated it
        assert set(c) == {"tensor", "shape", "bits", "producer", "codec", "compressed_ratio"}
    assert d["candidates"] and all({"kind", "split_index", "predicted"} <= set(c) for c in d["candidates"])
    assert {"cloud_only", "edge_only", "u8", "u4", "neurosurgeon", "qdmp", "qdmp_e_u4"} <= set(d["baselines"])
    for b in d["baselines"].values():
        assert {"kind", "split_index", "predicted"} <= set(b)
    assert d["exact"]["gap"] >= 0.0


def _set(d: dict[str, Any], path: str, value: Any) -> None:
    keys = path.split(".")
    for k in keys[:-1]:
        d = d[int(k)] if isinstance(d, list) else d[k]  # type: ignore[index]
    last: Any = int(keys[-1]) if isinstance(d, list) else keys[-1]
    if value is KeyError:
        del d[last]
    else:
        d[last] = value


def _first_layer(d: dict[str, Any]) -> str:
    return d["layers"][0]


MUTATIONS = [
    ("schema_version", 99, "schema_version"),
    ("schema_version", 1, "schema_version 1 is from an older splitsdk; re-run `splitsdk plan`"),
    ("schema_version", "2", "schema_version"),
    ("solution.crossing", [{"tensor": "t", "shape": [4], "bits": 16}], "solution.crossing[0].bits: must be <= 8"),
    ("solution.weight_bits.l0", 24, "solution.weight_bits.l0: must be 1..16 or 32"),
    ("solution.predicted.edge_ms", float("nan"), "solution.predicted.edge_ms: expected a finite number"),
    ("solution.origin", 3, "solution.origin: expected a string"),
    ("link.uplnk_mbps", 3.0, "link.uplnk_mbps: unknown key"),
    ("model.sha256", KeyError, "model.sha256: missing"),
    ("model.name", 3, "model.name"),
    ("link.uplink_mbps", "fast", "link.uplink_mbps"),
    ("constraints.memory_bytes", 0, "constraints.memory_bytes"),
    ("solution.kind", "HALF", "solution.kind"),
    ("solution.predicted.total_ms", "x", "solution.predicted.total_ms"),
    ("solution.predicted.total_ms", 1e9, "solution.predicted.total_ms"),
    ("solution.predicted.error", -1.0, "solution.predicted.error"),
    ("solution.split_index", -1, "solution.split_index"),
    ("candidates.0.predicted.cloud_ms", None, "candidates[0].predicted.cloud_ms"),
    ("baselines.qdmp.fits", "yes", "baselines.qdmp.fits"),
    ("baselines.u4.weight_bits", 0, "baselines.u4.weight_bits"),
    ("selection.criterion", "vibes", "selection.criterion"),
]


@pytest.mark.parametrize(("path", "value", "field"), MUTATIONS)
def test_validation_names_the_bad_field(path: str, value: Any, field: str) -> None:
    d = plan_to_dict(_plan())
    assert "l0" in d["solution"]["weight_bits"]
    bad = copy.deepcopy(d)
    _set(bad, path, value)
    with pytest.raises(PlanError) as exc:
        validate(bad, "plan.json")
    assert str(exc.value).startswith("plan.json: ") and field in str(exc.value) and "\n" not in str(exc.value)


def test_solution_bits_are_checked_against_the_edge_layers() -> None:
    d = plan_to_dict(_plan())
    assert d["solution"]["kind"] == "SPLIT" or d["solution"]["kind"] == "EDGE_ONLY"
    bad = copy.deepcopy(d)
    del bad["solution"]["activation_bits"][_first_layer(d)]
    with pytest.raises(PlanError, match="solution.activation_bits: no bits for edge layer"):
        validate(bad)
    bad = copy.deepcopy(d)
    bad["solution"]["crossing"] = [{"tensor": "t", "shape": [1], "bits": 0}]
    with pytest.raises(PlanError, match=r"solution.crossing\[0\].bits"):
        validate(bad)
    bad = copy.deepcopy(d)
    bad["solution"]["edge_layers"] = list(reversed(d["solution"]["edge_layers"])) + ["nope"]
    with pytest.raises(PlanError, match="solution.edge_layers"):
        validate(bad)


def test_a_plan_that_breaks_its_memory_limit_is_refused() -> None:
    d = plan_to_dict(_plan())
    d["constraints"]["memory_bytes"] = 1
    if d["solution"]["kind"] != "CLOUD_ONLY":
        with pytest.raises(PlanError, match="constraints.memory_bytes"):
            validate(d)


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "not valid JSON"), ("[1, 2]", "expected a JSON object"), ("", "not valid JSON")],
)
def test_corrupt_files_give_one_line_errors(tmp_path: Path, content: str, message: str) -> None:
    f = tmp_path / "plan.json"
    f.write_text(content)
    with pytest.raises(PlanError, match=message) as exc:
        load_plan(f)
    assert "\n" not in str(exc.value) and str(f) in str(exc.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="no such file"):
        load_plan(tmp_path / "none.json")


def test_save_never_leaves_a_half_written_file(tmp_path: Path) -> None:
    plan = _plan()
    target = tmp_path / "plan.json"
    target.write_text("old")
    with pytest.raises(PlanError):
        save_plan(validate_then_break(plan), target)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json"]


def validate_then_break(plan: Any) -> Any:
    """A plan object whose solution claims an impossible kind (the writer validates first)."""
    from dataclasses import replace

    return replace(plan, solution=replace(plan.solution, kind="CLOUD_ONLY"))


def test_long_candidate_lists_keep_the_front_the_fastest_and_the_chosen() -> None:
    from splitsdk.plan.autosplit import candidate_list, select
    from splitsdk.plan.build import KEEP_FASTEST, kept_candidates

    graph, prof, sens = random_problem_parts(3, 12, [2, 4, 6, 8])
    p = PlanProblem(graph, prof, sens, Link(5.0, 10.0), [2, 4, 6, 8], 10**7, max_error=5.0)
    cands = candidate_list(p)
    chosen = select(p, cands).chosen
    kept = kept_candidates(cands, chosen, set())
    if len(cands) <= 300:
        assert kept == list(range(len(cands)))
        return
    assert set(range(KEEP_FASTEST)) <= set(kept) and cands.index(chosen) in kept
    best_error = min(c.evaluation.error for c in cands)
    assert any(cands[i].evaluation.error == best_error for i in kept)


def test_a_failing_exact_solver_leaves_a_note_not_a_crash() -> None:
    graph, prof, sens = random_problem_parts(3, 14, BITS)
    p = PlanProblem(graph, prof, sens, Link(5.0, 10.0), BITS, 10**7, max_error=5.0)
    plan = make_plan(p, PlanMeta("big"), exact="exhaustive")  # 3^(14 + weight sets) is over the limit
    assert plan.exact is None
    assert any(n.startswith("no exact optimum: exhaustive: split") for n in plan.selection.notes)
    with pytest.raises(PlanError, match="unknown solver"):
        make_plan(p, PlanMeta("big"), exact="simplex")


# -- schema 3: compression, JPEG baselines, the frame rate ---------------------------------------------
DATA = Path(__file__).parent / "data"


def _traffic_plan() -> Plan:
    from splitsdk.plan.build import FeatureCompression, TrafficOptions
    from splitsdk.plan.traffic import Arrivals

    graph, prof, sens = random_problem_parts(1, 6, BITS)
    p = PlanProblem(graph, prof, sens, Link(20.0, 1.0), BITS, 10**6, max_error=5.0)  # CLOUD_ONLY is chosen
    ratios = {c.tensor: {b: 0.5 for b in (*BITS, 8)} for s in p.candidates for c in s.crossing}

    class Jpeg:
        quality, mean_bytes, encode_ms, agreement, accuracy, source = 75, 900.0, 0.4, 99.0, None, "test"

    return make_plan(
        p, PlanMeta("random", "ab" * 32, target="synthetic-edge", cloud="synthetic-cloud"),
        compression=FeatureCompression("zstd", ratios, lambda n: n * 1e-6, frames=4),
        traffic=TrafficOptions(Arrivals(40.0, "poisson"), max_loss=0.05), jpeg=[Jpeg()],
    )


def _as_schema_2(d: dict[str, Any]) -> dict[str, Any]:
    """A schema-3 plan as schema 2 wrote it: the version, and none of the fields schema 3 added."""
    old = copy.deepcopy(d)
    old["schema_version"] = 2
    del old["traffic"]
    for c in old["solution"]["crossing"]:
        del c["codec"], c["compressed_ratio"]
    for b in old["baselines"].values():
        del b["jpeg_quality"], b["measured_accuracy"]
    return old


def test_a_schema_2_plan_is_still_read_with_the_new_fields_at_their_defaults(tmp_path: Path) -> None:
    import json

    (tmp_path / "v2.json").write_text(json.dumps(_as_schema_2(json.loads((DATA / "valid_plan.json").read_text()))))
    plan = load_plan(tmp_path / "v2.json")
    assert plan.schema_version == 3 and plan.traffic is None
    assert all(c.codec == "none" and c.compressed_ratio is None for c in plan.solution.crossing)
    assert all(b.jpeg_quality is None and b.measured_accuracy is None for b in plan.baselines.values())
    save_plan(plan, tmp_path / "again.json")  # written back as schema 3
    assert json.loads((tmp_path / "again.json").read_text())["schema_version"] == 3
    assert load_plan(tmp_path / "again.json") == plan


def test_schema_3_round_trip_with_compression_jpeg_and_traffic(tmp_path: Path) -> None:
    plan = _traffic_plan()
    assert plan.solution.crossing and all(c.codec == "zstd" for c in plan.solution.crossing)
    assert plan.baselines["cloud_only_jpeg_q75"].jpeg_quality == 75
    assert plan.traffic is not None and len(plan.traffic.candidates) == len(plan.candidates)
    save_plan(plan, tmp_path / "a.json")
    again = load_plan(tmp_path / "a.json")
    assert again == plan and dumps(again) == dumps(plan)
    d = plan_to_dict(plan)
    assert set(d["traffic"]) == {"fps", "arrivals", "max_loss", "queue_depth", "queue_frames", "solution",
                                 "candidates", "baselines", "notes"}


TRAFFIC_MUTATIONS = [
    ("traffic.solution.loss_ratio", 1.5, "traffic.solution.loss_ratio: must be <= 1"),
    ("traffic.arrivals", "bursty", "traffic.arrivals: must be one of"),
    ("traffic.fps", 0, "traffic.fps: must be > 0"),
    ("traffic.queue_frames", 7, "traffic.queue_frames: 7 but queue_depth 4 holds 10 frames"),
    ("traffic.candidates", [], "traffic.candidates: 0 entries for"),
    ("traffic.solution.bottleneck", "gpu", "traffic.solution.bottleneck: 'gpu' is not one of its stages"),
    ("traffic.solution.feasible", False, "traffic.solution.feasible: False contradicts"),
    ("traffic.solution.stages.send", -1.0, "traffic.solution.stages.send: must be >= 0"),
    ("traffic.baselines.qdmp", KeyError, "traffic.baselines: entries and plan baselines differ in 'qdmp'"),
    ("solution.crossing.0.codec", "lz4", "solution.crossing[0].codec: must be one of 'none', 'zstd'"),
    ("solution.crossing.0.compressed_ratio", None, "solution.crossing[0].compressed_ratio: codec zstd needs"),
    ("solution.crossing.0.compressed_ratio", 0.0, "solution.crossing[0].compressed_ratio: must be > 0"),
    ("baselines.cloud_only_jpeg_q75.jpeg_quality", 0, "baselines.cloud_only_jpeg_q75.jpeg_quality: must be >= 1"),
    ("baselines.u4.jpeg_quality", 75, "baselines.u4.jpeg_quality: JPEG frames are a CLOUD_ONLY option"),
    ("baselines.cloud_only_jpeg_q75.measured_accuracy", 101.0, "measured_accuracy: must be <= 100"),
    ("schema_version", 4, "schema_version: 4 is not supported (this splitsdk reads 2 and 3)"),
]


@pytest.mark.parametrize(("path", "value", "field"), TRAFFIC_MUTATIONS)
def test_schema_3_fields_are_checked_and_named(path: str, value: Any, field: str) -> None:
    d = plan_to_dict(_traffic_plan())
    validate(copy.deepcopy(d))
    bad = copy.deepcopy(d)
    _set(bad, path, value)
    with pytest.raises(PlanError) as exc:
        validate(bad, "plan.json")
    assert str(exc.value).startswith("plan.json: ") and field in str(exc.value) and "\n" not in str(exc.value)


def _split_set_plan() -> Plan:
    """A plan made for a rate distribution: a chain whose cloud-only, middle and deep splits each win somewhere."""
    from test_plan_adaptive import _chain_problem

    from splitsdk.plan.build import representative_rate
    from splitsdk.plan.uplink import parse_uplink

    u = parse_uplink("0.05mbit..50mbit")
    p = _chain_problem()
    p.link = Link(representative_rate(u), 0.0)
    return make_plan(p, PlanMeta("chain", "ab" * 32, target="synthetic-edge", cloud="synthetic-cloud"), uplink=u)


def test_a_split_set_round_trips_and_a_plan_without_one_reads_as_none(tmp_path: Path) -> None:
    plan = _split_set_plan()
    s = plan.split_set
    assert s is not None and len(s.members) == 3 and s.latencies == "modelled"
    save_plan(plan, tmp_path / "a.json")
    save_plan(_split_set_plan(), tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert load_plan(tmp_path / "a.json") == plan
    d = plan_to_dict(plan)["split_set"]
    assert {"uplink", "rates", "weights", "members", "weight_bits", "activation_bits", "weight_bytes",
            "peak_activation_bytes", "buffer_bytes", "memory_limit", "expected_ms", "best_static_ms",
            "best_static_split", "oracle_ms", "per_rate", "latencies"} <= set(d)
    assert {"split_index", "kind", "wire_cap", "crossing_bits", "latency_ms"} <= set(d["members"][0])
    assert plan_to_dict(_plan())["split_set"] is None and load_plan_dict(plan_to_dict(_plan())).split_set is None
    old = plan_to_dict(_plan())
    del old["split_set"]
    assert validate(old).split_set is None  # written before the field: still read


def load_plan_dict(d: dict[str, Any]) -> Plan:
    return validate(copy.deepcopy(d))


SPLIT_SET_MUTATIONS = [
    ("split_set.members", "reverse", "split_set.members: split indices must ascend"),
    ("split_set.members.1.kind", "HALF", "split_set.members[1].kind: must be one of"),
    ("split_set.members.1.kind", "EDGE_ONLY", "split_set.members[1].kind: EDGE_ONLY does not match"),
    ("split_set.members.1.split_index", 9, "split_set.members: split indices must ascend"),
    ("split_set.members.2.split_index", 9, "split_set.members[2].split_index: 9 but the plan has 4 layers"),
    ("split_set.members.1.wire_cap", 9, "split_set.members[1].wire_cap: must be <= 8"),
    ("split_set.members.1.latency_ms", [1.0], "split_set.members[1].latency_ms: 1 entries for 8 rates"),
    ("split_set.members", [], "split_set.members: is empty"),
    ("split_set.rates", "reverse", "split_set.rates: must ascend"),
    ("split_set.weights.0", 0.5, "split_set.weights: needs one weight per rate (8), summing to 1"),
    ("split_set.per_rate", "pop", "split_set.per_rate: 7 entries for 8 rates"),
    ("split_set.per_rate.0.split_index", 3, "split_set.per_rate[0].split_index: does not match"),
    ("split_set.memory_limit", 1, "split_set: the chain needs"),
    ("split_set.weight_bits", [["l9", 8]], "split_set.weight_bits: layer 'l9' is not on the edge of split 4"),
    ("split_set.activation_bits", [["l0", 24]], "split_set.activation_bits.l0: must be 1..16 or 32"),
    ("split_set.latencies", "measured", "split_set.latencies: must be one of 'modelled'"),
    ("split_set.expected_ms", -1.0, "split_set.expected_ms: must be >= 0"),
]


@pytest.mark.parametrize(("path", "value", "field"), SPLIT_SET_MUTATIONS)
def test_a_bad_split_set_is_refused_naming_the_field(path: str, value: Any, field: str) -> None:
    d = plan_to_dict(_split_set_plan())
    validate(copy.deepcopy(d))
    bad = copy.deepcopy(d)
    if value in ("reverse", "pop"):
        target: Any = bad
        for k in path.split("."):
            target = target[k]
        target.reverse() if value == "reverse" else target.pop()
    else:
        _set(bad, path, value)
    with pytest.raises(PlanError) as exc:
        validate(bad, "plan.json")
    assert str(exc.value).startswith("plan.json: ") and field in str(exc.value) and "\n" not in str(exc.value)
