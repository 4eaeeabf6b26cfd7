"""plan.json and a bundle's manifest.json: one dataclass tree each, read and written through splitsdk.codec.

Every file under tests/data/invalid_plans/ and tests/data/invalid_manifests/ is refused with one line naming
the file and the field; its `.expect` sidecar holds the message fragment. The shipped JSON Schemas match the
classes and accept real files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import sys
from pathlib import Path

import jsonschema
import pytest

from splitsdk.cli.main import main
from splitsdk.convert.convert import ConvertArgumentError, convert_plan
from splitsdk.errors import BundleError, PlanError
from splitsdk.plan import PlanMeta, PlanProblem, make_plan
from splitsdk.plan.schema import Plan, PlannedCrossing, dumps, load_plan, save_plan
from splitsdk.plan.synthetic import random_problem_parts
from splitsdk.profile.types import Link
from splitsdk.schemas import generated, load
from splitsdk.wire.bundle import MANIFEST, load_bundle, write_manifest

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parent.parent


def _cases(folder: str) -> list[Path]:
    found = sorted((DATA / folder).glob("*.json"))
    assert found, folder
    return found


def _expect(path: Path) -> str:
    return path.with_suffix(".expect").read_text().strip()


def _one_line(exc: pytest.ExceptionInfo[BaseException], file: str, fragment: str) -> None:
    text = str(exc.value)
    assert "\n" not in text, text
    assert text.startswith(f"{file}: ") and fragment in text, (text, fragment)


# -- plan.json ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", _cases("invalid_plans"), ids=lambda p: p.stem)
def test_an_invalid_plan_is_refused_naming_the_field(path: Path) -> None:
    with pytest.raises(PlanError) as exc:
        load_plan(path)
    _one_line(exc, str(path), _expect(path))


def test_the_invalid_plans_are_one_defect_away_from_a_valid_one(tmp_path: Path) -> None:
    plan = load_plan(DATA / "valid_plan.json")
    assert plan.solution.crossing == (PlannedCrossing("pool", (4, 4, 8), 4, "pool"),)
    save_plan(plan, tmp_path / "plan.json")  # round trip, byte for byte
    assert (tmp_path / "plan.json").read_bytes() == (DATA / "valid_plan.json").read_bytes()
    assert load_plan(tmp_path / "plan.json") == plan


def _planned(seed: int = 4) -> Plan:
    graph, prof, sens = random_problem_parts(seed, 6, [2, 4, 8])
    problem = PlanProblem(graph, prof, sens, Link(5.0, 10.0), [2, 4, 8], 10**6, max_error=5.0)
    return make_plan(problem, PlanMeta("random", "ab" * 32, target="synthetic-edge", cloud="synthetic-cloud"))


def test_a_planned_plan_round_trips(tmp_path: Path) -> None:
    plan = _planned()
    save_plan(plan, tmp_path / "plan.json")
    again = load_plan(tmp_path / "plan.json")
    assert again == plan
    save_plan(again, tmp_path / "again.json")
    assert (tmp_path / "again.json").read_bytes() == (tmp_path / "plan.json").read_bytes()


def test_a_plan_save_would_not_load_is_not_written(tmp_path: Path) -> None:
    plan = load_plan(DATA / "valid_plan.json")
    wide = dataclasses.replace(plan.solution.crossing[0], bits=16)  # the wire packs at most 8 bits
    bad = dataclasses.replace(plan, solution=dataclasses.replace(plan.solution, crossing=(wide,)))
    with pytest.raises(PlanError) as exc:
        save_plan(bad, tmp_path / "plan.json")
    _one_line(exc, str(tmp_path / "plan.json"), "solution.crossing[0].bits: must be <= 8, got 16")
    assert not (tmp_path / "plan.json").exists()


# -- manifest.json ------------------------------------------------------------------------------------
def _bundle_with(tmp_path: Path, manifest: Path) -> Path:
    root = tmp_path / "bundle"
    root.mkdir()
    shutil.copyfile(manifest, root / MANIFEST)
    for name in ("edge.tflite", "cloud.keras"):  # load_bundle checks they exist; it does not load them
        (root / name).write_bytes(b"")
    return root


@pytest.mark.parametrize("path", _cases("invalid_manifests"), ids=lambda p: p.stem)
def test_an_invalid_manifest_is_refused_naming_the_field(path: Path, tmp_path: Path) -> None:
    root = _bundle_with(tmp_path, path)
    with pytest.raises(BundleError) as exc:
        load_bundle(root)
    _one_line(exc, str(root / MANIFEST), _expect(path))


def test_the_valid_manifest_round_trips(tmp_path: Path) -> None:
    root = _bundle_with(tmp_path, DATA / "valid_manifest.json")
    bundle = load_bundle(root)
    assert [(c.tensor, c.bits, c.edge_output) for c in bundle.crossing] == [("pool", 2, 0)]
    assert bundle.wire_bytes == 4 * 4 * 8 * 2 // 8
    (root / MANIFEST).unlink()
    write_manifest(root, bundle.manifest)
    assert (root / MANIFEST).read_bytes() == (DATA / "valid_manifest.json").read_bytes()
    assert load_bundle(root).manifest == bundle.manifest


# -- JSON Schemas -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(generated()))
def test_the_shipped_schemas_match_the_classes(name: str) -> None:
    shipped = REPO / "sdk" / "schemas" / name
    assert shipped.read_text() == generated()[name], f"{shipped} is out of date: run host_tools/regen_schemas.py"
    jsonschema.Draft202012Validator.check_schema(load(name))


def test_the_regen_script_writes_what_the_classes_give(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "host_tools"))
    try:
        from regen_schemas import drift
    finally:
        sys.path.remove(str(REPO / "host_tools"))
    assert drift(tmp_path) == sorted(generated())
    for name, text in generated().items():
        (tmp_path / name).write_text(text)
    assert drift(tmp_path) == []


def test_real_files_validate_against_the_schemas(tmp_path: Path) -> None:
    from test_wire_bundle import build_bundle

    save_plan(_planned(), tmp_path / "plan.json")
    jsonschema.validate(json.loads((tmp_path / "plan.json").read_text()), load("plan.schema.json"))
    jsonschema.validate(json.loads((DATA / "valid_plan.json").read_text()), load("plan.schema.json"))
    bundle = build_bundle(tmp_path / "bundle", bits=3)
    jsonschema.validate(json.loads((bundle / MANIFEST).read_text()), load("manifest.schema.json"))
    jsonschema.validate(json.loads((DATA / "valid_manifest.json").read_text()), load("manifest.schema.json"))


@pytest.mark.parametrize("name", ["unknown_key_misspelt", "string_for_int", "crossing_bits_above_8"])
def test_the_schemas_refuse_what_the_loaders_refuse(name: str) -> None:
    for folder, schema in (("invalid_plans", "plan.schema.json"), ("invalid_manifests", "manifest.schema.json")):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(json.loads((DATA / folder / f"{name}.json").read_text()), load(schema))


# -- convert_plan's inputs ----------------------------------------------------------------------------
def test_convert_plan_names_its_parameters_and_the_cli_its_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = DATA / "valid_plan.json"
    with pytest.raises(ConvertArgumentError, match=r"^samples: must be >= 1, got 0$"):
        convert_plan(plan, tmp_path / "m.keras", tmp_path / "out", samples=0)
    with pytest.raises(ConvertArgumentError, match=r"^input_scale: must be a finite number > 0"):
        convert_plan(plan, tmp_path / "m.keras", tmp_path / "out", input_scale=0.0)
    assert main(["convert", str(plan), "--model", "m.keras", "--input-scale", "-1", "-o", str(tmp_path / "o")]) != 0
    assert "--input-scale: must be a finite number > 0" in capsys.readouterr().err
    assert main(["convert", str(plan), "--model", "m.keras", "--postprocess", "topk:x", "-o", str(tmp_path)]) != 0
    assert "--postprocess: topk:K needs a positive integer K" in capsys.readouterr().err


def test_convert_plan_checks_a_plan_object_like_a_file(tmp_path: Path) -> None:
    plan = load_plan(DATA / "valid_plan.json")
    wide = dataclasses.replace(plan.solution.crossing[0], bits=12)
    bad = dataclasses.replace(plan, solution=dataclasses.replace(plan.solution, crossing=(wide,)))
    with pytest.raises(PlanError, match=r"^plan: solution.crossing\[0\].bits: must be <= 8, got 12$"):
        convert_plan(bad, tmp_path / "m.keras", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_convert_plan_takes_a_plan_object(tmp_path: Path) -> None:
    from plan_factory import forced_plan

    import model_zoo

    model = tmp_path / "two_head.keras"
    model_zoo.two_head().save(model)
    plan = load_plan(forced_plan(model, tmp_path / "plan.json", split=2, crossing_bits={"c1": 4}))
    report = convert_plan(plan, model, tmp_path / "bundle", samples=4, verify=False)
    bundle = load_bundle(tmp_path / "bundle")
    text = (tmp_path / "bundle" / "plan.json").read_text()
    assert text == dumps(plan) and bundle.plan_sha256 == hashlib.sha256(text.encode()).hexdigest()
    assert [(c.tensor, c.bits) for c in report.crossing] == [("c1", 4), ("c2", 8)] == [
        (c.tensor, c.bits) for c in bundle.crossing
    ]
    m = bundle.manifest
    assert m.kind == "SPLIT" and m.precision is not None and set(m.precision.layers) == set(plan.solution.edge_layers)
