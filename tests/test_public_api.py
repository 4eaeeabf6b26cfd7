"""The public API: every exported name resolves, `import splitsdk` loads no heavy dependency, the stage
entry points are the library functions and take objects as well as paths."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import splitsdk


def test_every_exported_name_resolves() -> None:
    for name in splitsdk.__all__:
        assert getattr(splitsdk, name) is not None, name


def test_import_is_light() -> None:
    code = "import sys, splitsdk; print(sorted(m for m in ('numpy', 'tensorflow', 'keras') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_stage_entry_points_are_the_library_functions() -> None:
    from splitsdk.cloud.daemon import serve
    from splitsdk.codegen import generate
    from splitsdk.toolchain.build import build_firmware
    from splitsdk.toolchain.emulate import emulate
    from splitsdk.toolchain.verify import verify

    assert splitsdk.generate is generate and splitsdk.build is build_firmware and splitsdk.serve is serve
    assert splitsdk.emulate is emulate and splitsdk.verify is verify
    assert {"generate", "build", "serve", "emulate", "verify", "ReceiverConfig"} <= set(splitsdk.__all__)


def test_generate_takes_objects_or_paths(tmp_path: Path) -> None:
    from edge_app_helpers import build_bundle

    from splitsdk.codegen import ServerSettings

    bundle = build_bundle(tmp_path / "bundle", bits=4)
    server = ServerSettings("10.0.0.2", 7711, "cam-1")
    by_path = splitsdk.generate(bundle, "cortex-a7", tmp_path / "a", server)
    by_object = splitsdk.generate(
        splitsdk.load_bundle(bundle), splitsdk.load_target("cortex-a7"), tmp_path / "b", server
    )
    assert by_path == by_object and "src/config.h" in by_path
    for rel in by_path:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
