"""Reader of deployment bundles: the directory the convert stage writes and the receiver serves.

A bundle holds `manifest.json`, the int8 edge model (`edge.tflite`) and the float cloud model
(`cloud.keras`). The manifest's `crossing` list is in wire order, which is also the cloud model's
input order and the edge model's output order. Loading validates every field and names the one that
is wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from splitsdk.errors import BundleError

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class InputSpec:
    """The edge model's input: HWC shape, dtype, and the real = raw * scale + offset mapping."""

    shape: tuple[int, ...]
    dtype: str
    scale: float
    offset: float


@dataclass(frozen=True)
class Crossing:
    """One tensor crossing the cut, with the edge's int8 and the wire's b-bit quantisation."""

    tensor: str
    shape: tuple[int, ...]  # without the batch dimension
    edge_scale: float
    edge_zero_point: int
    bits: int
    scale: float
    zero_point: int
    lut: npt.NDArray[np.uint8]  # lut[k] = code of int8 value k - 128
    # which output of edge.tflite holds this tensor: the converter may order outputs differently
    # from the wire, so consumers read outputs by this index, never by position or signature
    edge_output: int = 0

    @property
    def elements(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


@dataclass(frozen=True)
class Bundle:
    root: Path
    plan_sha256: str
    input: InputSpec
    edge_model: Path
    cloud_model: Path
    crossing: tuple[Crossing, ...]
    postprocess: dict[str, Any]

    @property
    def wire_bytes(self) -> int:
        """Payload bytes of one frame (without headers)."""
        return sum((c.elements * c.bits + 7) // 8 for c in self.crossing)


def wire_quant_params(edge_scale: float, edge_zero_point: int, bits: int) -> tuple[float, int]:
    """Min-max b-bit grid covering the whole int8 range of an edge tensor: (scale, zero point)."""
    from splitsdk.quant import minmax_grid

    scale, zero_point = minmax_grid((-128 - edge_zero_point) * edge_scale, (127 - edge_zero_point) * edge_scale, bits)
    return float(np.float32(scale)), zero_point


def _field(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in obj:
        raise BundleError(f"{where}: missing field '{key}'")
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise BundleError(f"{where}: field '{key}' has the wrong type ({type(value).__name__})")
    return value


def _shape(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in value):
        raise BundleError(f"{where}: 'shape' must be a list of positive ints, got {value!r}")
    return tuple(value)


def _crossing(raw: Any, i: int, where: str) -> Crossing:
    at = f"{where}: crossing[{i}]"
    if not isinstance(raw, dict):
        raise BundleError(f"{at} must be an object")
    bits = _field(raw, "bits", int, at)
    if not 1 <= bits <= 8:
        raise BundleError(f"{at}: 'bits' must be in 1..8, got {bits}")
    scale = float(_field(raw, "scale", (int, float), at))
    if not scale > 0:
        raise BundleError(f"{at}: 'scale' must be positive, got {scale}")
    lut_raw = _field(raw, "lut", list, at)
    if len(lut_raw) != 256 or not all(isinstance(v, int) and 0 <= v < (1 << bits) for v in lut_raw):
        raise BundleError(f"{at}: 'lut' must be 256 ints in 0..{(1 << bits) - 1}")
    return Crossing(
        tensor=_field(raw, "tensor", str, at),
        shape=_shape(_field(raw, "shape", list, at), at),
        edge_scale=float(_field(raw, "edge_scale", (int, float), at)),
        edge_zero_point=_field(raw, "edge_zero_point", int, at),
        bits=bits,
        scale=scale,
        zero_point=_field(raw, "zero_point", int, at),
        lut=np.array(lut_raw, dtype=np.uint8),
        edge_output=_field(raw, "edge_output", int, at) if "edge_output" in raw else i,
    )


def load_bundle(path: str | Path) -> Bundle:
    """Read and validate `path/manifest.json`; the model files must exist (they are not loaded here)."""
    root = Path(path)
    where = str(root / MANIFEST)
    try:
        data = json.loads((root / MANIFEST).read_text())
    except FileNotFoundError:
        raise BundleError(f"{where}: no such file (is {root} a bundle directory?)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{where}: unreadable: {exc}") from None
    if not isinstance(data, dict):
        raise BundleError(f"{where}: must hold a JSON object")
    version = _field(data, "schema_version", int, where)
    if version != SCHEMA_VERSION:
        raise BundleError(f"{where}: schema_version {version} is not supported (expected {SCHEMA_VERSION})")
    plan = _field(data, "plan_sha256", str, where)
    if len(plan) != 64 or any(ch not in "0123456789abcdef" for ch in plan):
        raise BundleError(f"{where}: 'plan_sha256' must be 64 lowercase hex digits")
    inp = _field(data, "input", dict, where)
    dtype = _field(inp, "dtype", str, f"{where}: input")
    if dtype not in ("uint8", "float32"):
        raise BundleError(f"{where}: input 'dtype' must be uint8 or float32, got {dtype!r}")
    input_spec = InputSpec(
        shape=_shape(_field(inp, "shape", list, f"{where}: input"), f"{where}: input"),
        dtype=dtype,
        scale=float(_field(inp, "scale", (int, float), f"{where}: input")),
        offset=float(_field(inp, "offset", (int, float), f"{where}: input")),
    )
    models = {}
    for key in ("edge_model", "cloud_model"):
        models[key] = root / _field(data, key, str, where)
        if not models[key].exists():
            raise BundleError(f"{where}: '{key}' names {models[key]}, which does not exist")
    crossing_raw = _field(data, "crossing", list, where)
    if not crossing_raw:
        raise BundleError(f"{where}: 'crossing' is empty")
    post = data.get("postprocess", {"kind": "topk", "k": 5})
    if not isinstance(post, dict) or not isinstance(post.get("kind"), str):
        raise BundleError(f"{where}: 'postprocess' must be an object with a string 'kind'")
    return Bundle(
        root=root,
        plan_sha256=plan,
        input=input_spec,
        edge_model=models["edge_model"],
        cloud_model=models["cloud_model"],
        crossing=tuple(_crossing(c, i, where) for i, c in enumerate(crossing_raw)),
        postprocess=post,
    )
