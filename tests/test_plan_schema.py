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
    assert d["schema_version"] == 2
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
        assert set(c) == {"tensor", "shape", "bits", "producer"}
    assert d["candidates"] and all({"kind", "split_index", "predicted"} <= set(c) for c in d["candidates"])
    assert {"cloud_only", "edge_only", "u8", "u4", "neurosurgeon", "qdmp", "qdmp_e_u4"} <= set(d["baselines"])
    for b in d["baselines"].values():
        assert {"kind", "split_index", "predicted"} <= set(b)
    assert d["exact"]["gap"] >= 0.0


def _set(d: dict[str, Any], path: str, value: Any) -> None:
    keys = path.split(".")
    for k in keys[:-1]:
        d = d[int(k)] if isinstance(d, list) else d[k]  # type: ignore[index]
    if value is KeyError:
        del d[keys[-1]]
    else:
        d[keys[-1]] = value


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
