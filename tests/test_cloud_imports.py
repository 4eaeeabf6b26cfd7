"""The receiver stays light: importing it, and serving a bundle whose cloud model is TFLite, loads no
TensorFlow, Keras, planner, converter, profiler or graph importer (a cloud host needs none of them)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from test_wire_bundle import build_bundle

HEAVY_TOP = ("keras", "tensorflow", "tf_keras")
HEAVY_SDK = ("splitsdk.plan", "splitsdk.convert", "splitsdk.profile", "splitsdk.graph")


def heavy(modules: list[str]) -> list[str]:
    return [
        m
        for m in modules
        if m.split(".")[0] in HEAVY_TOP or any(m == p or m.startswith(p + ".") for p in HEAVY_SDK)
    ]


def loaded_after(code: str, cwd: Path) -> list[str]:
    """The modules a fresh interpreter holds after running `code`."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=cwd, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    modules: list[str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return modules


def tflite_bundle(root: Path) -> Path:
    """A bundle whose cloud half is a float TFLite model (as ONNX-sourced bundles have), no cloud.keras."""
    import keras
    import tensorflow as tf

    build_bundle(root)
    cloud = keras.saving.load_model(root / "cloud.keras", compile=False)
    (root / "cloud.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(cloud).convert())
    (root / "cloud.keras").unlink()
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["cloud_model"] = "cloud.tflite"
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def test_importing_the_receiver_loads_nothing_heavy(tmp_path: Path) -> None:
    modules = loaded_after(
        "import splitsdk.cloud, splitsdk.cloud.server, splitsdk.cloud.daemon, splitsdk.cloud.model\n"
        "import splitsdk.cli.cmd_serve\n"
        "from splitsdk.cli.main import build_parser\n"
        "build_parser()",
        tmp_path,
    )
    assert "splitsdk.cloud.server" in modules
    assert heavy(modules) == []


def test_serving_a_tflite_bundle_loads_nothing_heavy(tmp_path: Path) -> None:
    bundle = tflite_bundle(tmp_path / "bundle")
    crossing = [c["shape"] for c in json.loads((bundle / "manifest.json").read_text())["crossing"]]
    code = f"""
import numpy as np
from splitsdk.cloud import Receiver, ReceiverConfig
from splitsdk.cloud.model import load_cloud_runner
from splitsdk.wire.bundle import load_bundle

bundle = load_bundle({str(bundle)!r})
receiver = Receiver(bundle, ReceiverConfig())  # the bundle's own cloud model, as `serve` loads it
out = load_cloud_runner(bundle)([np.zeros((2, *s), np.float32) for s in {crossing!r}])
assert [o.shape for o in out] == [(2, 10)], [o.shape for o in out]
np.testing.assert_allclose(out[0].sum(axis=1), 1.0, rtol=1e-5)  # the softmax head ran
"""
    modules = loaded_after(code, tmp_path)
    assert "ai_edge_litert" in {m.split(".")[0] for m in modules}  # the runtime did load the model
    assert heavy(modules) == []


def test_the_heavy_filter_sees_what_it_must() -> None:
    names = ["keras", "keras.src", "tensorflow.python", "splitsdk.plan.exact", "splitsdk.graph", "splitsdk.planner"]
    assert heavy(names) == names[:5]
    assert heavy(["numpy", "splitsdk.cloud", "splitsdk.runtime", "splitsdk.wire.bundle"]) == []
