"""firmware_examples/ are golden files: regenerating them from their checked-in bundles changes nothing."""

from __future__ import annotations

import filecmp
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "host_tools"))

from regen_firmware_examples import EXAMPLES, ROOT, regenerate  # noqa: E402


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_every_example_is_checked_in() -> None:
    for ex in EXAMPLES:
        assert (ROOT / ex.name / "bundle" / "manifest.json").is_file(), ex.name
        assert (ROOT / ex.name / "project" / "src" / "main.cpp").is_file(), ex.name


def test_regenerating_the_examples_changes_nothing(tmp_path: Path) -> None:
    for ex in EXAMPLES:
        (tmp_path / ex.name).mkdir()
        (tmp_path / ex.name / "bundle").symlink_to(ROOT / ex.name / "bundle")
    regenerate(tmp_path, EXAMPLES)
    for ex in EXAMPLES:
        checked_in, fresh = _tree(ROOT / ex.name / "project"), _tree(tmp_path / ex.name / "project")
        checked_in = {k: v for k, v in checked_in.items() if not k.startswith("build/")}
        drift = sorted(k for k in checked_in.keys() | fresh.keys() if checked_in.get(k) != fresh.get(k))
        assert not drift, f"{ex.name}: out of date ({', '.join(drift)}): run `make firmware-examples`"


def test_example_carries_the_shared_native_sources_verbatim() -> None:
    for ex in EXAMPLES:
        native = ROOT / ex.name / "project" / "native"
        for src in (REPO / "sdk" / "native").glob("split*.[ch]"):
            assert filecmp.cmp(src, native / src.name, shallow=False), f"{ex.name}: native/{src.name} differs"
