"""codegen: bundle + target -> a self-contained CMake project for the edge app (`splitsdk generate`).

Four layers, one direction: the bundle manifest (the deployed plan) and the target
descriptor -> `edge_app()` view-model -> `render()` (pure, {path: content}) -> `write_project()` (the
only code that writes). `splitsdk.toolchain` (build, emulate, verify) takes the project on from there.
"""

from __future__ import annotations

from pathlib import Path

from splitsdk.codegen.render import render
from splitsdk.codegen.viewmodel import EdgeApp, ServerSettings, edge_app
from splitsdk.codegen.writer import write_project
from splitsdk.target import load_target
from splitsdk.wire.bundle import load_bundle

__all__ = ["EdgeApp", "ServerSettings", "edge_app", "generate", "render", "write_project"]


def generate(
    bundle_dir: str | Path, target: str | Path, out: str | Path, server: ServerSettings | None = None
) -> list[str]:
    """Generate the edge project for `bundle_dir` on `target` into `out`; returns the changed paths."""
    app = edge_app(load_bundle(bundle_dir), load_target(target), server)
    return write_project(render(app), out)
