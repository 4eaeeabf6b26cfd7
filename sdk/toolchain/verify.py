"""`splitsdk verify FIRMWARE --bundle B`: does the target's TFLite compute what the host's does?

Runs the firmware's binary under emulation on calibration samples (`--offline --dump`: capture and
inference only, each crossing tensor written raw) and the bundle's edge model on the same samples
with the host's ai-edge-litert, then compares tensor by tensor. int8 outputs may differ by 1 LSB
(ARM and x86 kernels round differently, DESIGN.md); more than that, or any NaN/Inf in a float output
(Debian armhf TFLite returns NaN for dynamic-int4 models), and the model is refused with a message
naming the crossing tensor and the model output that holds it.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from splitsdk.errors import ToolchainError
from splitsdk.quant.calib import load_dataset
from splitsdk.runtime import to_input
from splitsdk.toolchain.build import load_firmware
from splitsdk.toolchain.emulate import run_app
from splitsdk.wire.bundle import Bundle, load_bundle

INT_TOLERANCE_LSB = 1
FLOAT_RTOL = 1e-3


class VerifyError(ToolchainError):
    """The target runtime mis-executes the edge model (or the firmware carries another model)."""


@dataclass(frozen=True)
class TensorCheck:
    crossing: str
    output: str  # the edge model's output tensor name
    dtype: str
    samples: int
    max_abs_diff: float
    mismatches: int  # elements beyond the tolerance, over all samples
    non_finite: int

    @property
    def ok(self) -> bool:
        return self.mismatches == 0 and self.non_finite == 0


def host_outputs(bundle: Bundle, samples: np.ndarray) -> tuple[list[str], list[list[np.ndarray]]]:
    """Output names (crossing order) and, per sample, the crossing tensors from the host's ai-edge-litert."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(bundle.edge_model))
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    outs = interp.get_output_details()
    names = [str(outs[c.edge_output]["name"]) for c in bundle.crossing]
    results = []
    for x in samples:
        interp.set_tensor(inp["index"], to_input(np.asarray(x, dtype=np.float32), inp).reshape(inp["shape"]))
        interp.invoke()
        results.append([interp.get_tensor(outs[c.edge_output]["index"])[0].copy() for c in bundle.crossing])
    return names, results


def compare(
    bundle: Bundle, names: list[str], host: list[list[np.ndarray]], target: list[list[np.ndarray]]
) -> list[TensorCheck]:
    checks = []
    for k, c in enumerate(bundle.crossing):
        h = np.stack([s[k] for s in host]).astype(np.float64)
        t = np.stack([s[k] for s in target]).astype(np.float64)
        finite = np.isfinite(t)
        diff = np.where(finite, np.abs(h - t), 0.0)
        integer = np.issubdtype(host[0][k].dtype, np.integer)
        limit = INT_TOLERANCE_LSB if integer else FLOAT_RTOL * np.maximum(np.abs(h), 1.0)
        checks.append(
            TensorCheck(
                crossing=c.tensor,
                output=names[k],
                dtype=str(host[0][k].dtype),
                samples=len(host),
                max_abs_diff=float(diff.max()) if diff.size else 0.0,
                mismatches=int(np.count_nonzero(diff > limit)),
                non_finite=int(np.count_nonzero(~finite)),
            )
        )
    return checks


def verify(
    firmware_dir: str | Path, bundle_dir: str | Path, calib: str | Path | None = None, samples: int = 8
) -> list[TensorCheck]:
    """Compare the firmware's edge model under emulation with the host runtime; raise VerifyError on a mismatch."""
    firmware = load_firmware(firmware_dir)
    bundle = load_bundle(bundle_dir)
    if firmware.plan_sha256 != bundle.plan_sha256:
        raise VerifyError(
            f"{firmware.root}: firmware runs plan {firmware.plan_sha256[:16]}..., bundle {bundle.root} holds "
            f"{bundle.plan_sha256[:16]}..."
        )
    data = load_dataset(calib, bundle.input.shape, samples=samples, image_scale=bundle.input.scale).x[:samples]
    names, host = host_outputs(bundle, data)
    with tempfile.TemporaryDirectory(prefix="splitsdk-verify-") as tmp:
        frames, dump = Path(tmp) / "frames", Path(tmp) / "dump"
        frames.mkdir()
        dump.mkdir()
        stems = [f"sample{i:05d}.f32" for i in range(len(data))]
        for stem, x in zip(stems, data, strict=True):
            np.ascontiguousarray(x, dtype="<f4").tofile(frames / stem)
        args = ["--model", str(firmware.model.resolve()), "--frames", str(frames), "--offline", "--quiet"]
        run = run_app(firmware, [*args, "--dump", str(dump)])
        if run.returncode != 0:
            raise VerifyError(f"the edge app failed under emulation: {run.error or run.stderr.strip()[-300:]}")
        target = []
        for stem, h in zip(stems, host, strict=True):
            outs = []
            for k, ref in enumerate(h):
                raw = (dump / f"{stem}.{k}.out").read_bytes()
                outs.append(np.frombuffer(raw, dtype=ref.dtype).reshape(ref.shape))
            target.append(outs)
    checks = compare(bundle, names, host, target)
    bad = [c for c in checks if not c.ok]
    if bad:
        c = bad[0]
        what = (
            f"{c.non_finite} NaN/Inf values"
            if c.non_finite
            else f"{c.mismatches} values differ by more than the tolerance (max {c.max_abs_diff:g})"
        )
        raise VerifyError(
            f"{firmware.target}'s TFLite mis-executes the edge model: crossing tensor '{c.crossing}' "
            f"(model output '{c.output}', {c.dtype}): {what} over {c.samples} samples vs the host runtime"
        )
    return checks
