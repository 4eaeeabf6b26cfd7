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
from splitsdk.target import Target
from splitsdk.wire.bundle import Bundle, ManifestCrossing

NATIVE_FILES = ("splitpack.h", "splitpack.c", "splitframe.h", "splitframe.c")
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
        return f"kLut{self.index}"


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


def edge_app(bundle: Bundle, target: Target, server: ServerSettings | None = None) -> EdgeApp:
    """The view-model for `bundle` on `target` (which must have a toolchain and a template family)."""
    tc = target.toolchain
    if tc is None or tc.sysroot is None or not target.family:
        raise GenerateError(f"target '{target.name}' ({target.path}) has no toolchain/sysroot/family: not deployable")
    crossing = tuple(CrossingView(i, c) for i, c in enumerate(bundle.crossing))
    model = bundle.edge_model.read_bytes()
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
        files=(
            ("model/edge.tflite", model),
            ("model/manifest.json", manifest),
            # the target descriptor travels with the project: `build` and `emulate` read this copy
            (f"target/{target.name}.toml", Path(target.path).read_bytes()),
            *native_sources(),
        ),
    )
