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
from splitsdk.target import Target, load_target
from splitsdk.wire.bundle import Bundle, load_bundle

__all__ = ["EdgeApp", "ServerSettings", "edge_app", "generate", "render", "write_project"]


def generate(
    bundle: Bundle | str | Path, target: Target | str | Path, out: str | Path, server: ServerSettings | None = None
) -> list[str]:
    """Generate the edge project for `bundle` (a Bundle or its directory) on `target` (a Target, a shipped
    target's name or a .toml file) into `out`; returns the changed paths."""
    b = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    t = target if isinstance(target, Target) else load_target(target)
    return write_project(render(edge_app(b, t, server)), out)
