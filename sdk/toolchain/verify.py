"""`splitsdk verify FIRMWARE --bundle B`: does the target's TFLite compute what the host's does?

Runs the firmware's binary under emulation on calibration samples (`--offline --dump`: capture and
inference only, each crossing tensor written raw) and the bundle's edge model on the same samples
with the host's ai-edge-litert, then compares tensor by tensor. int8 outputs may differ by 1 LSB
(ARM and x86 kernels round differently) plus what the model's ops legitimately add (`OP_EXTRA_LSB`,
measured); a tensor of class scores beyond that still passes when its top-1 agrees on every sample
(the check says which it judged by). Any NaN/Inf in a float output (Debian armhf TFLite returns NaN
for dynamic-int4 models), or a tensor beyond both, and the model is refused with a message naming the
crossing tensor and the model output that holds it.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from splitsdk.errors import ToolchainError
from splitsdk.quant.calib import load_dataset
from splitsdk.runtime import io_details, run_tflite
from splitsdk.toolchain.build import Firmware
from splitsdk.toolchain.emulate import as_firmware, run_app
from splitsdk.wire.bundle import Bundle, load_bundle

INT_TOLERANCE_LSB = 1
FLOAT_RTOL = 1e-3
# LSBs an int8 op's result may legitimately differ by between TFLite 2.14.1's armhf and x86 kernels, beyond the 1 of
# any requantisation: measured with host ai-edge-litert against the cortex-a7 app under qemu-arm on 64 samples
# (tests/test_onnx_correctness.py builds the models): RESIZE_BILINEAR alone differs by 2, MEAN by 1, HARD_SWISH,
# AVERAGE_POOL_2D, SOFTMAX and LOGISTIC by 0; a chain of 4 x (conv, hard-swish, bilinear resize) by up to 4.
# The differences compound through the layers that follow, so a tensor's tolerance adds the allowance of every
# such op of the model.
OP_EXTRA_LSB = {"RESIZE_BILINEAR": 1, "RESIZE_NEAREST_NEIGHBOR": 0, "MEAN": 0, "HARD_SWISH": 0,
                "AVERAGE_POOL_2D": 0, "SOFTMAX": 0, "LOGISTIC": 0}


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
    tolerance: float = INT_TOLERANCE_LSB  # LSBs for an integer tensor, relative for a float one
    top1_agreement: float = 1.0  # fraction of samples whose argmax (of the flattened tensor) agrees
    judged_by: str = "lsb"  # "lsb": every value within the tolerance; "top1": class scores, same top-1 on all

    @property
    def ok(self) -> bool:
        return self.non_finite == 0 and (self.mismatches == 0 or self.judged_by == "top1")


def lsb_tolerance(content: bytes) -> tuple[int, str]:
    """The LSB tolerance of the edge model's int8 outputs (`OP_EXTRA_LSB` over its ops) and why."""
    from splitsdk.runtime import op_names

    ops = op_names(content)
    extra = {op: ops.count(op) * OP_EXTRA_LSB[op] for op in sorted(set(ops)) if OP_EXTRA_LSB.get(op)}
    why = ", ".join(f"{n} x {op}" for op, n in ((op, ops.count(op)) for op in extra)) or "no op beyond requantising"
    return INT_TOLERANCE_LSB + sum(extra.values()), why


def host_outputs(bundle: Bundle, samples: np.ndarray) -> tuple[list[str], list[list[np.ndarray]]]:
    """Output names (crossing order) and, per sample, the crossing tensors from the host's ai-edge-litert."""
    content = bundle.edge_model.read_bytes()
    _, outs = io_details(content)
    got = run_tflite(content, [np.asarray(samples, dtype=np.float32)])
    names = [outs[c.edge_output].name for c in bundle.crossing]
    return names, [[got[c.edge_output][i] for c in bundle.crossing] for i in range(len(samples))]


def compare(
    bundle: Bundle, names: list[str], host: list[list[np.ndarray]], target: list[list[np.ndarray]],
    lsb: int = INT_TOLERANCE_LSB,
) -> list[TensorCheck]:
    """Per crossing tensor: values within `lsb` LSBs (integer) or FLOAT_RTOL (float), no NaN/Inf. A tensor of
    class scores (one axis, several values) whose top-1 agrees on every sample passes on that task-level
    agreement even beyond the LSB tolerance (`judged_by` "top1"); a NaN/Inf never passes."""
    checks = []
    for k, c in enumerate(bundle.crossing):
        h = np.stack([s[k] for s in host]).astype(np.float64)
        t = np.stack([s[k] for s in target]).astype(np.float64)
        finite = np.isfinite(t)
        diff = np.where(finite, np.abs(h - t), 0.0)
        integer = np.issubdtype(host[0][k].dtype, np.integer)
        limit = lsb if integer else FLOAT_RTOL * np.maximum(np.abs(h), 1.0)
        n = len(host)
        top_t = np.argmax(np.where(finite, t, -np.inf).reshape(n, -1), 1)
        agree = float(np.mean(np.argmax(h.reshape(n, -1), 1) == top_t))
        mismatches = int(np.count_nonzero(diff > limit))
        scores = h.ndim == 2 and h.shape[1] > 1
        checks.append(
            TensorCheck(
                crossing=c.tensor,
                output=names[k],
                dtype=str(host[0][k].dtype),
                samples=n,
                max_abs_diff=float(diff.max()) if diff.size else 0.0,
                mismatches=mismatches,
                non_finite=int(np.count_nonzero(~finite)),
                tolerance=float(lsb if integer else FLOAT_RTOL),
                top1_agreement=agree,
                judged_by="top1" if mismatches and scores and agree == 1.0 else "lsb",
            )
        )
    return checks


def verify(
    firmware: Firmware | str | Path,
    bundle: Bundle | str | Path,
    calib: str | Path | None = None,
    samples: int = 8,
) -> list[TensorCheck]:
    """Compare the firmware's edge model (a Firmware or its directory) under emulation with the host runtime
    running the bundle's (a Bundle or its directory); raise VerifyError on a mismatch."""
    firmware = as_firmware(firmware)
    bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    if firmware.plan_sha256 != bundle.plan_sha256:
        raise VerifyError(
            f"{firmware.root}: firmware runs plan {firmware.plan_sha256[:16]}..., bundle {bundle.root} holds "
            f"{bundle.plan_sha256[:16]}..."
        )
    data = load_dataset(calib, bundle.input.shape, samples=samples, image_scale=bundle.input.scale).x[:samples]
    names, host = host_outputs(bundle, data)
    lsb, why = lsb_tolerance(bundle.edge_model.read_bytes())
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
    checks = compare(bundle, names, host, target, lsb)
    bad = [c for c in checks if not c.ok]
    if bad:
        c = bad[0]
        what = (
            f"{c.non_finite} NaN/Inf values"
            if c.non_finite
            else f"{c.mismatches} values differ by more than {c.tolerance:g} LSB (max {c.max_abs_diff:g}; tolerance "
                 f"from {why}), top-1 agreement {c.top1_agreement:.0%}"
        )
        raise VerifyError(
            f"{firmware.target}'s TFLite mis-executes the edge model: crossing tensor '{c.crossing}' "
            f"(model output '{c.output}', {c.dtype}): {what} over {c.samples} samples vs the host runtime"
        )
    return checks
