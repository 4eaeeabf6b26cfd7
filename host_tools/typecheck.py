"""`make lint`'s type check: mypy over the real `splitsdk` package, so every `splitsdk.*` import resolves.

The repository maps its folders into one package (`sdk/` -> `splitsdk`, `codegen/` -> `splitsdk.codegen`,
... in pyproject.toml's `package-dir`), which mypy cannot follow from the source tree. This script mirrors
that mapping as a tree of symbolic links under `.typecheck/` (rebuilt each run, so new files count) and
runs `mypy -p splitsdk` on it; paths in mypy's messages are rewritten back to the repository's files.
Point an IDE's extra search path at `.typecheck` for the same view.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT / ".typecheck"


def package_dirs() -> dict[str, Path]:
    """pyproject's package-dir: dotted package name -> source folder."""
    with open(ROOT / "pyproject.toml", "rb") as fh:
        mapping = tomllib.load(fh)["tool"]["setuptools"]["package-dir"]
    return {name: ROOT / folder for name, folder in mapping.items()}


def build_tree() -> dict[Path, Path]:
    """The link tree; returns link path -> real file, for translating mypy's output."""
    shutil.rmtree(TREE, ignore_errors=True)
    links: dict[Path, Path] = {}
    dirs = package_dirs()
    for name, src in sorted(dirs.items()):
        dest = TREE.joinpath(*name.split("."))
        nested = [Path(*other.split(".")[len(name.split(".")):]) for other in dirs if other.startswith(name + ".")]
        for path in sorted(src.rglob("*")):
            rel = path.relative_to(src)
            if path.is_dir() or "__pycache__" in rel.parts or any(rel.is_relative_to(n) for n in nested):
                continue
            if path.suffix not in (".py", ".pyi", ".typed"):
                continue
            link = dest / rel
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(path, link)
            links[link.relative_to(ROOT)] = path.relative_to(ROOT)
    return links


def main(argv: list[str]) -> int:
    links = build_tree()
    env = dict(os.environ, MYPYPATH=str(TREE))
    cmd = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), "-p", "splitsdk", *argv]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    for link, real in sorted(links.items(), key=lambda kv: -len(str(kv[0]))):
        out = out.replace(str(link), str(real))
    sys.stdout.write(out)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
