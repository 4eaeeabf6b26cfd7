"""JSON Schemas of splitsdk's own file formats, generated from their dataclasses (`splitsdk.codec.json_schema`).

`plan.schema.json` (plan.json, `splitsdk.plan.schema.Plan`), `manifest.schema.json` (a bundle's
manifest.json, `splitsdk.wire.bundle.Manifest`), `target.schema.json` (targets/*.toml), `splitsdk-project.schema.json`,
`firmware.schema.json` and `receiver-config.schema.json` (receiver.toml) ship with the package for other tools
to validate against.
`host_tools/regen_schemas.py` rewrites them from `generated()`; a test fails when they drift from the classes.
The schemas check types, keys and ranges; the rules across fields are the loaders' (`load_plan`, `load_bundle`).
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any


def generated() -> dict[str, str]:
    """File name -> the schema text the classes give now (deterministic: sorted `$defs`, 2-space indent)."""
    from splitsdk.cloud.config import ReceiverConfig
    from splitsdk.codec import json_schema
    from splitsdk.plan.schema import Plan
    from splitsdk.target import Target
    from splitsdk.toolchain.build import Firmware, Project
    from splitsdk.wire.bundle import Manifest

    schemas = {
        "plan.schema.json": json_schema(Plan, "splitsdk plan.json"),
        "manifest.schema.json": json_schema(Manifest, "splitsdk bundle manifest.json"),
        "target.schema.json": json_schema(Target, "splitsdk target descriptor (targets/*.toml)"),
        "splitsdk-project.schema.json": json_schema(Project, "splitsdk generated project (splitsdk-project.json)"),
        "firmware.schema.json": json_schema(Firmware, "splitsdk firmware directory (firmware.json)"),
        "receiver-config.schema.json": json_schema(ReceiverConfig, "splitsdk receiver configuration (receiver.toml)"),
    }
    return {name: json.dumps(schema, indent=2) + "\n" for name, schema in schemas.items()}


def load(name: str) -> dict[str, Any]:
    """A shipped schema by file name (`plan.schema.json`, `manifest.schema.json`)."""
    value = json.loads((resources.files(__name__) / name).read_text(encoding="utf-8"))
    if not isinstance(value, dict):
        raise ValueError(f"{name}: not a JSON Schema object")
    return value
