"""Shared by the codegen/build/emulate tests: tiny real bundles, frame folders, the host-only pipeline.

Bundles come from test_wire_bundle.build_bundle (one bundle builder for the test suite): a Keras conv
edge part converted to int8 TFLite, a float cloud head, a manifest with LUTs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from test_wire_bundle import INPUT_SHAPE, build_bundle

from splitsdk.wire.bundle import Bundle, load_bundle

__all__ = ["INPUT_SHAPE", "build_bundle", "host_pipeline", "host_edge_outputs", "write_frames"]


def write_frames(folder: Path, n: int, seed: int = 0) -> Path:
    """`n` .f32 frames (real-valued model input, as calibration samples are) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        rng.random(INPUT_SHAPE, dtype=np.float32).tofile(folder / f"frame{i:03d}.f32")
    return folder


def read_frames(folder: Path) -> list[tuple[str, np.ndarray]]:
    return [(p.name, np.fromfile(p, dtype=np.float32).reshape(INPUT_SHAPE)) for p in sorted(folder.glob("*.f32"))]


def host_edge_outputs(bundle: Bundle, image: np.ndarray) -> list[np.ndarray]:
    """The edge model under the host's ai-edge-litert, crossing (wire) order."""
    from splitsdk.wire.edge import EdgeModel

    return EdgeModel(bundle).run(image)


def host_pipeline(bundle_dir: Path, frames: Path) -> list[str]:
    """RESULT bodies of the host-only pipeline: litert edge -> LUT -> pack -> unpack -> cloud -> post-process."""
    from splitsdk import wire
    from splitsdk.cloud.model import load_cloud_runner
    from splitsdk.cloud.postprocess import resolve
    from splitsdk.wire.edge import EdgeModel, frame_from_edge_outputs

    bundle = load_bundle(bundle_dir)
    edge, cloud, post = EdgeModel(bundle), load_cloud_runner(bundle), resolve(bundle.postprocess)
    bodies = []
    for i, (_, image) in enumerate(read_frames(frames)):
        frame = frame_from_edge_outputs(bundle, edge.run(image), i)
        inputs = [
            wire.unpack_dequantize(t.payload, c.shape, t.bits, t.scale, t.zero_point)[None]
            for t, c in zip(frame.tensors, bundle.crossing, strict=True)
        ]
        bodies.append(post([o[0] for o in cloud(inputs)]).decode())
    return bodies


def shared_dir(factory: object) -> Path:
    """One directory per test session for the expensive artefacts (bundle, builds) of several modules."""
    base = Path(factory.getbasetemp()) / "edge-app"  # type: ignore[attr-defined]
    base.mkdir(exist_ok=True)
    return base


def shared_bundle(base: Path, name: str = "one", **kw: object) -> Path:
    """A bundle built once per session (build_bundle arguments in `kw`)."""
    root = base / f"bundle-{name}"
    if not (root / "manifest.json").is_file():
        build_bundle(root, **kw)  # type: ignore[arg-type]
    return root


def shared_firmware(base: Path, bundle: Path, target: str, sanitize: bool = False) -> Path:
    """Generate + build `bundle` for `target` once per session; returns the firmware directory."""
    from splitsdk.codegen import generate
    from splitsdk.toolchain.build import build_firmware

    tag = f"{target}{'-asan' if sanitize else ''}"
    fw = base / f"fw-{tag}"
    if not (fw / "firmware.json").is_file():
        project = base / f"proj-{target}"
        generate(bundle, target, project)
        build_firmware(project, fw, sanitize=sanitize, build_dir=base / f"build-{tag}")
    return fw
