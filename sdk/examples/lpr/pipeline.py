"""The licence-plate reader through each way of running it, as plate strings (what the case study's table counts).

- `float_plates`: the float Keras model on the host (Float on edge / Float to cloud compute exactly this).
- `simulated_plates`: the whole model fake-quantised at uniform `bits` by the planner's own quantisers (TQ8
  EDGE-ONLY: TFLite's int8 converter cannot convert the BiLSTM, so there is no edge file to run).
- `host_plates`: the converted bundle on the host (`splitsdk.convert.split_pipeline`: int8 edge TFLite, wire
  quantisation and packing, float cloud model), decoded like the receiver's "lpr_ctc" hook.
- `qemu_plates`: the real thing: the cross-built ARM edge app under qemu-arm sending to a real `splitsdk serve`
  (the bundle's cloud half + the "lpr_ctc" hook); the plates are read back from the receiver's SQLite database.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from splitsdk.errors import ToolchainError
from splitsdk.examples.lpr.decode import decode
from splitsdk.target import FLOAT_BITS

BATCH = 64


def float_plates(model_path: str | Path, x: np.ndarray) -> list[str]:
    """Plates read by the float Keras model."""
    import keras

    model = keras.models.load_model(model_path, compile=False)
    return decode(np.asarray(model.predict(x, batch_size=BATCH, verbose=0)))


def simulated_plates(model_path: str | Path, x: np.ndarray, calib: np.ndarray, bits: int = 8) -> list[str]:
    """Plates read by the whole model with every layer's weights and outputs fake-quantised at `bits`.

    Uses `splitsdk.plan.accuracy`'s layer-by-layer replay and the planner's quantisers (kernels as convert
    ships them, outputs over the range seen on `calib`), i.e. what the planner would measure for a uniform
    EDGE-ONLY candidate.
    """
    from splitsdk.graph import load_graph
    from splitsdk.plan.accuracy import calibrate, run_quantised

    graph = load_graph(model_path)
    last = graph.outputs[0]
    wbits = {n: bits for n in graph.topological_order() if graph.layer(n).quantizable}
    out = run_quantised(  # the softmax output stays float
        graph, x, calibrate(graph, calib), wbits, lambda _n, t: FLOAT_BITS if t == last else bits
    )
    return decode(out)


def host_plates(bundle: str | Path, x: np.ndarray) -> list[str]:
    """Plates the bundle reads on the host (the same arithmetic as camera + receiver, without QEMU)."""
    from splitsdk.convert.verify import split_pipeline

    out = [split_pipeline(Path(bundle), x[i : i + BATCH])[0] for i in range(0, len(x), BATCH)]
    return decode(np.concatenate(out))


@dataclass
class QemuRun:
    """One emulated run: plates by frame file name (from the receiver's DB) and the app's stage timings."""

    plates: dict[str, str]
    stages: dict[str, dict[str, float]] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    db: Path | None = None


def db_plates(db: Path) -> dict[int, str]:
    """Plate strings stored by the receiver, by frame sequence number (the "lpr_ctc" JSON's `plate`)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT seq, status, result FROM results ORDER BY seq").fetchall()
    finally:
        con.close()
    bad = [seq for seq, status, _ in rows if status != 0]
    if bad:
        raise ToolchainError(f"{db}: frames {bad[:5]} have an error status")
    return {int(seq): str(json.loads(bytes(res))["plate"]) for seq, _, res in rows}


def qemu_plates(
    firmware: str | Path, bundle: str | Path, frames: str | Path, db: Path, n: int | None = None
) -> QemuRun:
    """Run the firmware under qemu-arm against a real receiver storing into `db`, then read the plates from it.

    `db` must not exist yet (a fresh store, so every row is from this run). Frames are mapped to sequence
    numbers by the app's own result lines; the plates themselves come from the database.
    """
    from splitsdk.toolchain.build import load_firmware
    from splitsdk.toolchain.emulate import ReceiverProcess, app_args, run_app

    db = Path(db)
    if db.exists():
        raise ToolchainError(f"{db}: already exists (the run needs a fresh result database)")
    fw = load_firmware(firmware)
    with ReceiverProcess(bundle, db=db) as receiver:
        run = run_app(fw, app_args(fw, frames, receiver.port, n), timeout_s=1800.0)
    if run.returncode != 0:
        raise ToolchainError(f"edge app exited with {run.returncode}: {run.error or run.stderr.strip()[-300:]}")
    stored = db_plates(db)
    frame_of = {r.seq: r.frame for r in run.results}
    missing = sorted(set(frame_of) - set(stored))
    if missing:
        raise ToolchainError(f"{db}: no stored result for frames {missing[:5]}")
    plates = {frame_of[seq]: plate for seq, plate in stored.items() if seq in frame_of}
    return QemuRun(plates=plates, stages=run.stages, counters=run.counters, db=db)


def frame_labels(frames: str | Path) -> dict[str, str]:
    """`labels.txt` of a PPM frame folder (written by `data.write_frames`): frame file name -> plate."""
    out = {}
    for line in (Path(frames) / "labels.txt").read_text().splitlines():
        name, plate = line.split()
        out[name] = plate
    return out
