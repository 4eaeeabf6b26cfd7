"""View-model of the generated edge app: what the templates need, computed once, in plain values.

Built from the bundle manifest (the plan as deployed: crossing tensors, quantisation, LUTs), the
target descriptor (toolchain facts) and the server settings. Templates only loop and print; every C
identifier, array and size is computed here.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from splitsdk import __version__
from splitsdk.address import parse_hostport
from splitsdk.errors import GenerateError
from splitsdk.native import SOURCE_NAMES as NATIVE_FILES  # the shared C, splitcodec (zstd) included
from splitsdk.target import Target
from splitsdk.wire.bundle import Bundle, ManifestCrossing
from splitsdk.wire.edge import BASE_WINDOW, PROBE_MAX_FRAMES, Switching

WIRE_DOC = "wire-protocol.md"  # sdk/native/wire-protocol.md: the protocol the C implements
_DEVICE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_HOST = re.compile(r"^[A-Za-z0-9.:-]{1,253}$")


@dataclass(frozen=True)
class ServerSettings:
    """The receiver the app connects to and its identity: generated defaults the config file overrides."""

    host: str = "127.0.0.1"
    port: int = 7700
    device_id: str = "camera-0"

    @classmethod
    def parse(cls, server: str | None, device_id: str | None, what: str = "server") -> ServerSettings:
        """From a `HOST:PORT` string and a device id (either may be None: the default).

        `what` names the server field in errors (the CLI passes its flag).
        """
        base = cls()
        host, port = parse_hostport(server, what) if server is not None else (base.host, base.port)
        return cls(host, port, device_id if device_id is not None else base.device_id).validate()

    def validate(self) -> ServerSettings:
        if not _HOST.match(self.host):
            raise GenerateError(f"server host {self.host!r} is not a host name or address")
        if not 0 < self.port < 65536:
            raise GenerateError(f"server port {self.port} is outside 1..65535")
        if not _DEVICE_ID.match(self.device_id):
            raise GenerateError(f"device id {self.device_id!r}: use 1-128 of A-Z a-z 0-9 . _ : -")
        return self


@dataclass(frozen=True)
class CrossingView:
    """A bundle's `ManifestCrossing` (`spec`) as the templates see it: its wire position and C identifiers added."""

    index: int
    spec: ManifestCrossing
    member: str = ""  # a multi-split bundle's member (its split), in C identifiers: its tensors' LUTs are its own

    @property
    def name(self) -> str:
        return self.spec.tensor

    @property
    def elements(self) -> int:
        return math.prod(self.spec.shape)

    @property
    def packed_bytes(self) -> int:
        return (self.elements * self.spec.bits + 7) // 8

    @property
    def lut_ident(self) -> str:
        return f"kLut{self.member}{'_' if self.member else ''}{self.index}"

    @property
    def codec_enum(self) -> str:
        """The C enumerator of the crossing's wire codec (splitframe.h `sp_codec`)."""
        return {"none": "SP_CODEC_NONE", "zstd": "SP_CODEC_ZSTD", "jpeg": "SP_CODEC_JPEG"}[self.spec.codec]


@dataclass(frozen=True)
class SegmentView:
    """One model of a multi-split bundle's edge chain (`ManifestSegment`): its file, the member whose cut it
    outputs (`produces`, an index into `EdgeApp.splits`), and for each tensor of the cut before it (wire order)
    the input that takes it (empty: fed by the frame)."""

    index: int
    file: str
    inputs: tuple[int, ...]
    produces: int


@dataclass(frozen=True)
class SplitView:
    """One member of a multi-split bundle (`ManifestSplit`): what FRAME.split carries, the segments it runs (indices
    into `EdgeApp.segments`, in order), its crossing in wire order, and the planner's modelled times."""

    index: int
    split: int
    kind: str
    segments: tuple[int, ...]
    crossing: tuple[CrossingView, ...]
    edge_ms: float
    cloud_ms: float

    @property
    def crossing_ident(self) -> str:
        return f"kCrossingSplit{self.split}"

    @property
    def segments_ident(self) -> str:
        return f"kSegmentsSplit{self.split}"

    @property
    def packed_bytes(self) -> int:
        return sum(c.packed_bytes for c in self.crossing)


@dataclass(frozen=True)
class EdgeApp:
    """Everything one generated project is made of. `files` are copied verbatim (model, native C)."""

    version: str
    target_name: str
    family: str
    triple: str
    cflags: tuple[str, ...]
    cmake_system_processor: str
    sysroot_suite: str
    sysroot_arch: str
    sysroot_lib_dir: str
    plan_sha256: str
    server: ServerSettings
    input_hwc: tuple[int, int, int]
    input_scale: float
    input_offset: float
    crossing: tuple[CrossingView, ...]
    files: tuple[tuple[str, bytes], ...]
    model_file_name: str = "edge.tflite"
    queue_depth: int = 4
    backoff_initial_ms: int = 100
    backoff_max_ms: int = 5000
    # a multi-split bundle's members and edge chain (empty for a single-split bundle: `crossing` is all it sends)
    splits: tuple[SplitView, ...] = ()
    segments: tuple[SegmentView, ...] = ()
    # the adaptive camera's policy, the Python camera's (splitsdk.wire.edge), generated into config.h
    switching: Switching = Switching()
    probe_max_frames: int = PROBE_MAX_FRAMES
    base_window: int = BASE_WINDOW

    @property
    def multi(self) -> bool:
        return bool(self.splits)

    @property
    def max_crossing(self) -> int:
        """The most tensors one frame sends (a multi-split bundle: over its members)."""
        return max((len(s.crossing) for s in self.splits), default=len(self.crossing))

    @property
    def jpeg_quality(self) -> int | None:
        """CLOUD-ONLY+JPEG (the one crossing is the frame, codec jpeg): the quality the app encodes it at."""
        c = self.crossing
        return c[0].spec.jpeg_quality if len(c) == 1 and c[0].spec.codec == "jpeg" and not self.splits else None

    @property
    def input_scale_repr(self) -> str:
        """The input scale as a C double literal (the exact value the receiver and Python use)."""
        return repr(float(self.input_scale))

    @property
    def input_offset_repr(self) -> str:
        return repr(float(self.input_offset))

    @property
    def plan_hash_bytes(self) -> list[int]:
        return list(bytes.fromhex(self.plan_sha256))

    @property
    def input_elements(self) -> int:
        h, w, c = self.input_hwc
        return h * w * c

    @property
    def wire_bytes(self) -> int:
        return sum(c.packed_bytes for c in self.crossing)

    @property
    def toolchain_file_name(self) -> str:
        return f"{self.target_name}.toolchain.cmake"

    @property
    def model_install_path(self) -> str:
        return f"/usr/share/splitsdk-edge/{self.model_file_name}"


def native_sources() -> tuple[tuple[str, bytes], ...]:
    """The shared C (sdk/native) and its contract, byte for byte: generated projects carry the one source
    of truth (the C in `native/`, the wire protocol document as `docs/wire-protocol.md`)."""
    root = resources.files("splitsdk.native")
    return (
        *((f"native/{name}", (root / name).read_bytes()) for name in NATIVE_FILES),
        (f"docs/{WIRE_DOC}", (root / WIRE_DOC).read_bytes()),
    )


def _input_hwc(bundle: Bundle) -> tuple[int, int, int]:
    shape = bundle.input.shape
    if len(shape) == 2:
        return shape[0], shape[1], 1
    if len(shape) == 3:
        return shape[0], shape[1], shape[2]
    raise GenerateError(
        f"{bundle.root}/manifest.json: input 'shape' {list(shape)} is not HW or HWC; the edge app reads images"
    )


def _chain(bundle: Bundle) -> tuple[tuple[SplitView, ...], tuple[SegmentView, ...]]:
    """A multi-split bundle's members and the segment models they run, each file once (empty for a
    single-split bundle)."""
    members = bundle.manifest.splits
    files: list[str] = []
    for m in members:
        files += [seg.file for seg in m.segments if seg.file not in files]
    produces: dict[str, int] = {}
    inputs: dict[str, tuple[int, ...]] = {}
    for i, m in enumerate(members):
        for seg in m.segments:
            if inputs.setdefault(seg.file, seg.inputs) != seg.inputs:
                raise GenerateError(
                    f"{bundle.root}/manifest.json: splits[{i}]: segment {seg.file} is fed differently by two members"
                )
        if produces.setdefault(m.segments[-1].file, i) != i:
            raise GenerateError(f"{bundle.root}/manifest.json: splits[{i}]: two members end at {m.segments[-1].file}")
    for f in files:
        if f not in produces:
            raise GenerateError(
                f"{bundle.root}/manifest.json: segment {f} ends no member's chain (its outputs are "
                "no member's crossing)"
            )
    segments = tuple(SegmentView(j, f, inputs[f], produces[f]) for j, f in enumerate(files))
    splits = tuple(
        SplitView(
            index=i,
            split=m.split,
            kind=m.kind,
            segments=tuple(files.index(seg.file) for seg in m.segments),
            crossing=tuple(CrossingView(j, c, f"S{m.split}") for j, c in enumerate(m.crossing)),
            edge_ms=m.edge_ms or 0.0,
            cloud_ms=m.cloud_ms or 0.0,
        )
        for i, m in enumerate(members)
    )
    return splits, segments


def edge_app(bundle: Bundle, target: Target, server: ServerSettings | None = None) -> EdgeApp:
    """The view-model for `bundle` on `target` (which must have a toolchain and a template family)."""
    tc = target.toolchain
    if tc is None or tc.sysroot is None or not target.family:
        raise GenerateError(f"target '{target.name}' ({target.path}) has no toolchain/sysroot/family: not deployable")
    crossing = tuple(CrossingView(i, c) for i, c in enumerate(bundle.crossing))
    splits, segments = _chain(bundle)
    # the edge models: a single-split bundle's one, or every segment of a multi-split bundle's chain (each once)
    models = (
        tuple((f"model/{s.file}", (bundle.root / s.file).read_bytes()) for s in segments)
        if splits
        else (("model/edge.tflite", bundle.edge_model.read_bytes()),)
    )
    manifest = (bundle.root / "manifest.json").read_bytes()
    return EdgeApp(
        version=__version__,
        target_name=target.name,
        family=target.family,
        triple=tc.triple,
        cflags=tc.cflags,
        cmake_system_processor=tc.cmake_system_processor,
        sysroot_suite=tc.sysroot.suite,
        sysroot_arch=tc.sysroot.arch,
        sysroot_lib_dir=tc.sysroot.lib_dir,
        plan_sha256=bundle.plan_sha256,
        server=(server or ServerSettings()).validate(),
        input_hwc=_input_hwc(bundle),
        input_scale=bundle.input.scale,
        input_offset=bundle.input.offset,
        crossing=crossing,
        splits=splits,
        segments=segments,
        model_file_name=bundle.manifest.edge_model if splits else "edge.tflite",
        files=(
            *models,
            ("model/manifest.json", manifest),
            # the target descriptor travels with the project: `build` and `emulate` read this copy
            (f"target/{target.name}.toml", Path(target.path).read_bytes()),
            *native_sources(),
        ),
    )
