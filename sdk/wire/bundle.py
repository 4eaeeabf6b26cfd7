"""Deployment bundles: the directory the convert stage writes and the receiver serves.

A bundle holds `manifest.json`, the int8 edge model (`edge.tflite`), the float cloud model
(`cloud.keras` or `cloud.tflite`) and a copy of the plan. The manifest is declared once as the
`Manifest` dataclass tree below: convert writes it and `load_bundle` reads it through `splitsdk.codec`
(unknown keys, wrong types and out-of-range values refused, the field named), and its JSON Schema
(`splitsdk/schemas/manifest.schema.json`) is derived from it. The `crossing` list is in wire order,
which is also the cloud model's input order.

A multi-split bundle (schema 2, `splitsdk.convert.chain`) also lists its `splits`: the edge runs a chain of
segment models (input -> cut 1 -> cut 2 -> ...) and sends, per frame, the tensors of one member's cut, naming
it in FRAME.split; the receiver holds one cloud half per member. Its top-level fields describe the shallowest
member (one segment, fed by the frame), so a reader that ignores `splits` still sees a sound bundle; a bundle
without `splits` is a single-split bundle (FRAME.split 0).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from splitsdk.codec import CodecError, bounds, decode, dumps_json, encode, write_atomic
from splitsdk.errors import BundleError

SCHEMA_VERSION: Final = 2  # what convert writes; schema 1 (no `codec`: every crossing uncompressed) is read too
READABLE_SCHEMAS: Final = (1, 2)
MANIFEST = "manifest.json"
PLAN = "plan.json"  # the copy of the plan the bundle was made from
DEFAULT_POSTPROCESS: dict[str, Any] = {"kind": "topk", "k": 5}
_HEX = set("0123456789abcdef")


@dataclass(frozen=True)
class InputSpec:
    """The edge model's input: HWC shape, dtype, and the real = raw * scale + offset mapping."""

    shape: tuple[int, ...] = field(metadata=bounds(ge=1))
    dtype: Literal["uint8", "float32"]
    scale: float = field(metadata=bounds(gt=0))
    offset: float


@dataclass(frozen=True)
class ManifestCrossing:
    """A crossing tensor as deployed: the plan's `PlannedCrossing` after convert calibrated it, with the
    edge model's int8 quantisation, the wire's b-bit grid and the LUT between them. Each FRAME carries
    one `splitsdk.wire.frame.WireTensor` (the packed codes) per entry, in this order."""

    tensor: str
    shape: tuple[int, ...] = field(metadata=bounds(ge=1))  # without the batch dimension
    edge_scale: float = field(metadata=bounds(gt=0))
    edge_zero_point: int = field(metadata=bounds(ge=-128, le=127))
    bits: int = field(metadata=bounds(ge=1, le=8))
    scale: float = field(metadata=bounds(gt=0))
    zero_point: int = field(metadata=bounds(ge=0, le=255))
    lut: tuple[int, ...] = field(metadata=bounds(ge=0, le=255))  # lut[k] = code of int8 value k - 128
    # which output of edge.tflite holds this tensor: the converter may order outputs differently
    # from the wire, so consumers read outputs by this index, never by position or signature
    edge_output: int = field(metadata=bounds(ge=0))
    # how the camera compresses the packed codes on the wire (the plan's choice; schema 2): "zstd" sends
    # one zstd frame per tensor (codec 1 in the FRAME), "none" the packed bytes as they are, "jpeg" (a
    # CLOUD_ONLY bundle's frame, 8 bits, HxWx1 or HxWx3) the frame's pixels as one baseline JPEG at
    # `jpeg_quality` (codec 2), mapped to the model input by the receiver as the edge app maps them
    codec: Literal["none", "zstd", "jpeg"] = "none"
    jpeg_quality: int | None = field(default=None, metadata=bounds(ge=1, le=100))  # with codec "jpeg" only

    @property
    def elements(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @cached_property
    def lut_table(self) -> npt.NDArray[np.uint8]:
        """The LUT as the 256-entry uint8 array `requantize_lut` takes."""
        return np.array(self.lut, dtype=np.uint8)


@dataclass(frozen=True)
class ModelOutput:
    """One output of the source model, as the cloud runner returns it: its name in the model and its shape
    (without the batch dimension)."""

    name: str
    shape: tuple[int, ...] = field(metadata=bounds(ge=1))


@dataclass(frozen=True)
class ManifestSegment:
    """One model of the edge chain: its file, and for each tensor of the previous member's cut (its wire
    order) the index of the segment's input that takes it (none for a segment fed by the frame)."""

    file: str
    inputs: tuple[int, ...] = field(default=(), metadata=bounds(ge=0))


@dataclass(frozen=True, kw_only=True)
class ManifestSplit:
    """One member of a multi-split bundle: `split` (the edge layers it runs; what FRAME.split carries), the
    segments the edge runs for it in order (each member's last segment's outputs are its `crossing`, read
    by `edge_output`), its crossing in wire order and its cloud half."""

    split: int = field(metadata=bounds(ge=0, le=0xFFFF))
    kind: Literal["CLOUD_ONLY", "EDGE_ONLY", "SPLIT"]
    segments: tuple[ManifestSegment, ...]
    crossing: tuple[ManifestCrossing, ...]
    cloud_model: str
    cloud_tflite: str | None = None
    # the planner's cost model for the target (modelled, not measured): the camera's edge time for this member
    # and the cloud half's time; a camera choosing a member at its estimated uplink adds the transmit time
    edge_ms: float | None = field(default=None, metadata=bounds(ge=0))
    cloud_ms: float | None = field(default=None, metadata=bounds(ge=0))


@dataclass(frozen=True, kw_only=True)
class PrecisionRecord:
    """What each edge layer executes in edge.tflite (for people and reports; no reader depends on it)."""

    edge_runtime: str
    layers: dict[str, str] = field(default_factory=dict)  # absent from the manifests of early converters
    weight_bits: dict[str, int] = field(metadata=bounds(ge=1, le=32))
    activation_bits: dict[str, int] = field(metadata=bounds(ge=1, le=32))
    emulated_layers: tuple[str, ...]
    note: str


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """manifest.json: what the edge app and the receiver need to run a converted plan."""

    schema_version: Literal[1, 2] = SCHEMA_VERSION
    plan_sha256: str  # SHA-256 of the plan.json the bundle was made from (also in every frame)
    kind: Literal["CLOUD_ONLY", "EDGE_ONLY", "SPLIT"]
    target: str
    input: InputSpec
    edge_model: str  # file names inside the bundle
    cloud_model: str
    cloud_tflite: str | None = None
    crossing: tuple[ManifestCrossing, ...]
    postprocess: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_POSTPROCESS))  # "kind" + parameters
    precision: PrecisionRecord | None = None
    splits: tuple[ManifestSplit, ...] = ()  # a multi-split bundle's members, ascending split (schema 2)
    # the source model's outputs in its order: the receiver returns the cloud model's outputs in this order (a
    # converter may reorder a TFLite model's outputs); empty in bundles made before it was recorded: file order
    outputs: tuple[ModelOutput, ...] = ()


@dataclass(frozen=True)
class Bundle:
    """A loaded bundle: its folder and its manifest."""

    root: Path
    manifest: Manifest

    @property
    def plan_sha256(self) -> str:
        return self.manifest.plan_sha256

    @property
    def input(self) -> InputSpec:
        return self.manifest.input

    @property
    def edge_model(self) -> Path:
        return self.root / self.manifest.edge_model

    @property
    def cloud_model(self) -> Path:
        return self.root / self.manifest.cloud_model

    @property
    def crossing(self) -> tuple[ManifestCrossing, ...]:
        return self.manifest.crossing

    @property
    def postprocess(self) -> dict[str, Any]:
        return self.manifest.postprocess

    @property
    def wire_bytes(self) -> int:
        """Payload bytes of one frame (without headers)."""
        return sum((c.elements * c.bits + 7) // 8 for c in self.crossing)

    @property
    def split_indices(self) -> tuple[int, ...]:
        """The splits a FRAME may name: the members' of a multi-split bundle, else (0,)."""
        return tuple(s.split for s in self.manifest.splits) or (0,)

    def check_split(self, split: int) -> int:
        """`split` when a FRAME may name it; else a BundleError naming the bundle and its splits."""
        if split not in self.split_indices:
            raise BundleError(f"{self.root}: no split {split} (it has {list(self.split_indices)})")
        return split

    def segments(self, split: int) -> tuple[ManifestSegment, ...]:
        """The edge models the camera runs for `split`, in order (a single-split bundle: its edge model).
        KeyError: no such member."""
        if not self.manifest.splits:
            if split != 0:
                raise KeyError(split)
            return (ManifestSegment(self.manifest.edge_model),)
        for s in self.manifest.splits:
            if s.split == split:
                return s.segments
        raise KeyError(split)

    def member(self, split: int) -> Bundle:
        """The single-split view of member `split` (its crossing and cloud half at the top level; the
        bundle itself when it is a single-split one and `split` is 0). KeyError: no such member."""
        if not self.manifest.splits:
            if split != 0:
                raise KeyError(split)
            return self
        for s in self.manifest.splits:
            if s.split == split:
                m = replace(self.manifest, kind=s.kind, edge_model=s.segments[-1].file if s.segments else
                            self.manifest.edge_model, cloud_model=s.cloud_model, cloud_tflite=s.cloud_tflite,
                            crossing=s.crossing, splits=())
                return Bundle(self.root, m)
        raise KeyError(split)


def wire_quant_params(edge_scale: float, edge_zero_point: int, bits: int) -> tuple[float, int]:
    """Min-max b-bit grid covering the whole int8 range of an edge tensor: (scale, zero point)."""
    from splitsdk.quant import minmax_grid

    scale, zero_point = minmax_grid((-128 - edge_zero_point) * edge_scale, (127 - edge_zero_point) * edge_scale, bits)
    return float(np.float32(scale)), zero_point


def check_manifest(m: Manifest) -> Manifest:
    """`m`, after the rules that tie fields together (types and ranges are the codec's); CodecError names
    the field."""
    if len(m.plan_sha256) != 64 or set(m.plan_sha256) - _HEX:
        raise CodecError("plan_sha256", "must be 64 lowercase hex digits")
    for key in ("edge_model", "cloud_model", "cloud_tflite"):
        _file_name(key, getattr(m, key))
    _check_crossing("crossing", m.crossing, m.schema_version)
    for i, c in enumerate(m.crossing):
        if c.codec == "jpeg" and (m.kind != "CLOUD_ONLY" or m.splits or c.shape != m.input.shape):
            raise CodecError(f"crossing[{i}].codec", "jpeg sends the frame of a single-split CLOUD_ONLY bundle "
                             f"(the input {list(m.input.shape)}), not {m.kind} {list(c.shape)}")
    _check_splits(m)
    names = [o.name for o in m.outputs]
    if len(set(names)) != len(names) or "" in names:
        raise CodecError("outputs", f"names must be non-empty and distinct, got {names}")
    kind = m.postprocess.get("kind")
    if not isinstance(kind, str) or not kind:
        raise CodecError("postprocess.kind", "must be a non-empty string (a built-in name or module:function)")
    return m


def _file_name(key: str, name: str | None) -> None:
    if name is not None and (not name or Path(name).name != name or name in (".", "..")):
        raise CodecError(key, f"must be a file name inside the bundle, got {name!r}")


def _check_crossing(key: str, crossing: tuple[ManifestCrossing, ...], schema: int) -> None:
    if not crossing:
        raise CodecError(key, "is empty: a bundle sends at least one tensor")
    for i, c in enumerate(crossing):
        top = (1 << c.bits) - 1
        if len(c.lut) != 256:
            raise CodecError(f"{key}[{i}].lut", f"must have 256 entries, got {len(c.lut)}")
        if max(c.lut) > top:
            raise CodecError(f"{key}[{i}].lut", f"codes must be in 0..{top} for {c.bits} bits, got {max(c.lut)}")
        if c.zero_point > top:
            raise CodecError(f"{key}[{i}].zero_point", f"must be in 0..{top} for {c.bits} bits, got {c.zero_point}")
        if schema < 2 and c.codec != "none":
            raise CodecError(f"{key}[{i}].codec", "needs schema_version 2 (a schema-1 manifest has no codec)")
        if (c.codec == "jpeg") != (c.jpeg_quality is not None):
            raise CodecError(f"{key}[{i}].jpeg_quality", "is given exactly when codec is \"jpeg\"")
        if c.codec == "jpeg" and (c.bits != 8 or len(c.shape) != 3 or c.shape[-1] not in (1, 3)):
            raise CodecError(f"{key}[{i}].codec", f"jpeg sends an HxWx1 or HxWx3 frame at 8 bits, not "
                             f"{c.bits} bits {list(c.shape)}")
    outputs = [c.edge_output for c in crossing]
    if len(set(outputs)) != len(outputs):
        raise CodecError(key, f"two tensors name the same edge_output ({outputs})")


def _check_splits(m: Manifest) -> None:
    """A multi-split bundle's members: schema 2, at least two, ascending split, each sound; the first one
    is what the top-level fields describe."""
    if not m.splits:
        return
    if m.schema_version < 2:
        raise CodecError("splits", "needs schema_version 2 (a schema-1 manifest is a single-split bundle)")
    if len(m.splits) < 2:
        raise CodecError("splits", f"a multi-split bundle has at least 2 members, got {len(m.splits)}")
    indices = [s.split for s in m.splits]
    if indices != sorted(set(indices)):
        raise CodecError("splits", f"split indices must ascend without repeats, got {indices}")
    for i, s in enumerate(m.splits):
        key = f"splits[{i}]"
        if not s.segments:
            raise CodecError(f"{key}.segments", "is empty: every member runs at least one segment")
        for j, seg in enumerate(s.segments):
            _file_name(f"{key}.segments[{j}].file", seg.file)
        _file_name(f"{key}.cloud_model", s.cloud_model)
        _file_name(f"{key}.cloud_tflite", s.cloud_tflite)
        _check_crossing(f"{key}.crossing", s.crossing, m.schema_version)
    first = m.splits[0]
    if (m.crossing, m.cloud_model, m.edge_model) != (first.crossing, first.cloud_model, first.segments[-1].file):
        raise CodecError("splits[0]", "must be what the top-level edge_model, cloud_model and crossing describe")


def parse_manifest(data: Any, where: str) -> Manifest:
    """Decoded manifest.json values as a checked Manifest; BundleError names `where` and the field."""
    if isinstance(data, dict) and data.get("schema_version", SCHEMA_VERSION) not in READABLE_SCHEMAS:
        raise BundleError(
            f"{where}: schema_version {data['schema_version']!r} is not supported (this splitsdk reads "
            f"{' and '.join(map(str, READABLE_SCHEMAS))}); re-run `splitsdk convert`"
        )
    try:
        return check_manifest(decode(Manifest, data))
    except CodecError as exc:
        raise BundleError(f"{where}: {exc}") from None


def write_manifest(folder: Path, manifest: Manifest) -> None:
    """Write `folder/manifest.json`; a manifest load_bundle would refuse is refused here, nothing written."""
    data = encode(manifest)
    if not manifest.splits:
        del data["splits"]  # a single-split bundle's manifest reads as it did before multi-split bundles
    if not manifest.outputs:
        del data["outputs"]  # as written before the outputs were recorded
    text = dumps_json(data)
    parse_manifest(json.loads(text), str(folder / MANIFEST))
    write_atomic(folder / MANIFEST, text)


def load_bundle(path: str | Path) -> Bundle:
    """Read and check `path/manifest.json`; the model files must exist (they are not loaded here)."""
    root = Path(path)
    where = str(root / MANIFEST)
    try:
        data = json.loads((root / MANIFEST).read_text())
    except FileNotFoundError:
        raise BundleError(f"{where}: no such file (is {root} a bundle directory?)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{where}: unreadable: {exc}") from None
    manifest = parse_manifest(data, where)
    files = [(key, getattr(manifest, key)) for key in ("edge_model", "cloud_model")]
    for i, s in enumerate(manifest.splits):
        files += [(f"splits[{i}].segments[{j}].file", seg.file) for j, seg in enumerate(s.segments)]
        files.append((f"splits[{i}].cloud_model", s.cloud_model))
    for key, name in files:
        file = root / name
        if not file.exists():
            raise BundleError(f"{where}: {key}: names {file}, which does not exist")
    check_plan_hash(root, manifest)
    return Bundle(root, manifest)


def check_plan_hash(root: Path, manifest: Manifest) -> None:
    """The bundle's copy of the plan (`plan.json`, which convert writes) must be the plan whose SHA-256
    the manifest and every camera's HELLO carry: a plan swapped after convert is refused, not served."""
    plan = root / PLAN
    try:
        content = plan.read_bytes()
    except FileNotFoundError:
        return  # a bundle assembled without its plan: nothing to compare
    except OSError as exc:
        raise BundleError(f"{plan}: unreadable: {exc}") from None
    digest = hashlib.sha256(content).hexdigest()
    if digest != manifest.plan_sha256:
        raise BundleError(
            f"{plan}: SHA-256 {digest[:16]}... is not {MANIFEST} plan_sha256 {manifest.plan_sha256[:16]}... "
            "(the plan was changed after convert: re-run `splitsdk convert`)"
        )
