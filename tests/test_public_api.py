"""The public API: every exported name resolves, and `import splitsdk` loads no heavy dependency."""

from __future__ import annotations

import subprocess
import sys

import splitsdk


def test_every_exported_name_resolves() -> None:
    for name in splitsdk.__all__:
        assert getattr(splitsdk, name) is not None, name


def test_import_is_light() -> None:
    code = "import sys, splitsdk; print(sorted(m for m in ('numpy', 'tensorflow', 'keras') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
