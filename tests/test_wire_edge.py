"""The reference edge client: edge.tflite under ai-edge-litert -> LUT -> pack -> receiver, via the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_receiver import ReceiverThread
from test_wire_bundle import build_bundle

from splitsdk.cli.main import main as cli_main
from splitsdk.cloud.certs import make_certs
from splitsdk.cloud.config import ReceiverConfig, TlsConfig
from splitsdk.cloud.model import load_cloud_runner
from splitsdk.cloud.postprocess import topk
from splitsdk.wire.bundle import Bundle, load_bundle
from splitsdk.wire.edge import EdgeModel


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Bundle, Path, ReceiverThread, Any]]:
    root = tmp_path_factory.mktemp("edge")
    bundle = load_bundle(build_bundle(root / "bundle", two_crossings=True, bits=6, seed=5))
    make_certs(root / "certs", ["cam-sim"], ["127.0.0.1"])
    certs = root / "certs"
    cfg = ReceiverConfig(
        listen="127.0.0.1:0",
        db=root / "r.sqlite",
        tls=TlsConfig(cert=certs / "server.pem", key=certs / "server.key", client_ca=certs / "ca.pem"),
    ).validate()
    runner = load_cloud_runner(bundle)
    srv = ReceiverThread(bundle, cfg, runner)
    yield bundle, certs, srv, runner
    srv.stop()


def numpy_reference(bundle: Bundle, runner: Any, image: np.ndarray) -> dict[str, Any]:
    """Independent path: TFLite int8 outputs -> numpy LUT -> numpy dequantise -> cloud model -> top-k."""
    outs = EdgeModel(bundle).run(image)
    inputs = []
    for out, c in zip(outs, bundle.crossing, strict=True):
        codes = c.lut_table[out.astype(np.int16) + 128]
        inputs.append(((codes.astype(np.float32) - c.zero_point) * np.float32(c.scale))[None])
    return json.loads(topk(runner(inputs), bundle.postprocess))


def test_edge_sim_cli_end_to_end(env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle, certs, srv, runner = env
    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    images = {f"f{i}.npy": rng.random(bundle.input.shape, dtype=np.float32) for i in range(4)}
    for name, img in images.items():
        np.save(frames / name, img)
    from PIL import Image

    Image.fromarray(rng.integers(0, 256, bundle.input.shape, dtype=np.uint8)).save(frames / "z.png")
    rc = cli_main(
        [
            "edge-sim",
            str(bundle.root),
            "--server",
            f"127.0.0.1:{srv.port}",
            "--frames",
            str(frames),
            "--device-id",
            "cam-sim",
            "--ca",
            str(certs / "ca.pem"),
            "--cert",
            str(certs / "cam-sim.pem"),
            "--key",
            str(certs / "cam-sim.key"),
            "--json",
        ]
    )
    assert rc == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [ln["frame"] for ln in lines] == ["f0.npy", "f1.npy", "f2.npy", "f3.npy", "z.png"]
    assert [ln["seq"] for ln in lines] == [0, 1, 2, 3, 4] and all(ln["status"] == 0 for ln in lines)
    for ln in lines[:4]:
        got = ln["result"]["topk"]
        want = numpy_reference(bundle, runner, images[ln["frame"]])["topk"]
        assert [c for c, _ in got] == [c for c, _ in want]
        np.testing.assert_allclose([s for _, s in got], [s for _, s in want], atol=1e-5)


def test_edge_sim_errors_are_one_line(env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle, _, srv, _ = env
    assert cli_main(["edge-sim", str(bundle.root), "--server", "127.0.0.1:1", "--frames", str(tmp_path)]) == 1
    assert "no .npy/.png/.jpg frames" in capsys.readouterr().err
    np.save(tmp_path / "a.npy", np.zeros(bundle.input.shape, np.float32))
    # no TLS against a TLS receiver: the receiver drops the connection, the CLI says so in one line
    assert cli_main(["edge-sim", str(bundle.root), "--server", f"127.0.0.1:{srv.port}", "--frames", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("splitsdk: error:")
