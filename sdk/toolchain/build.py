"""`splitsdk build PROJECT -o FIRMWARE`: cross-compile a generated project and collect the firmware.

The project's `splitsdk-project.json` names its target; the target's sysroot comes from the cache
(built on first use). CMake runs with the project's own toolchain file, so what `build` does is what a
user typing `cmake` would get. The firmware directory holds what goes on the camera:

    bin/splitsdk-edge                       stripped binary
    lib/                                    the shared libraries it needs, from the sysroot
    share/splitsdk-edge/edge.tflite         the edge model (a multi-split bundle: its segment*.tflite chain)
    etc/init.d/S90splitsdk-edge             BusyBox init script
    etc/splitsdk-edge.conf                  config file (server, device id, ...)
    lib/systemd/system/splitsdk-edge.service
    firmware.json                           target, plan hash, sizes
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from splitsdk.codec import CodecError, bounds, decode, dumps_json, write_atomic
from splitsdk.errors import ToolchainError
from splitsdk.outputs import check_replaceable, replace_dir
from splitsdk.target import RuntimeBuild, Target, load_target
from splitsdk.toolchain.sysroot import ensure_sysroot
from splitsdk.toolchain.tools import run_tool

PROJECT_FILE = "splitsdk-project.json"
FIRMWARE_FILE = "firmware.json"
BINARY = "splitsdk-edge"
T = TypeVar("T")


@dataclass(frozen=True)
class Project:
    """A generated project on disk, as its `splitsdk-project.json` describes it (paths relative to `root`)."""

    generated: str  # who generated it, from what (informative)
    splitsdk_version: str
    target: str
    target_file: str  # the target descriptor's copy
    plan_sha256: str
    toolchain_file: str
    binary: str
    model: str
    init_script: str
    systemd_unit: str
    config: str
    root: Path = field(default=Path("."), init=False, compare=False)  # where it was read from, not in the file


@dataclass(frozen=True)
class Firmware:
    """A built firmware directory (`firmware.json`)."""

    target: str
    plan_sha256: str
    binary_bytes: int = field(metadata=bounds(ge=0))  # stripped
    firmware_bytes: int = field(metadata=bounds(ge=0))  # everything under root but firmware.json
    libraries: tuple[str, ...]
    sanitized: bool
    runtime: RuntimeBuild | None = None  # the TFLite build it ships (None: firmware.json of an older splitsdk)
    # the model file the app is started with, in share/splitsdk-edge: a multi-split bundle's deepest segment (the
    # other segments lie beside it), else edge.tflite
    model_file: str = "edge.tflite"
    root: Path = field(default=Path("."), init=False, compare=False)  # where it was read from, not in the file

    @property
    def target_file(self) -> Path:
        """The target descriptor the firmware was built for (a copy: custom targets work too)."""
        return self.root / "share" / BINARY / f"{self.target}.toml"

    @property
    def binary(self) -> Path:
        return self.root / "bin" / BINARY

    @property
    def model(self) -> Path:
        return self.root / "share" / BINARY / self.model_file


def _load(cls: type[T], root: Path, name: str, what: str) -> T:
    """The record `root/name` as a `cls` (its `root` set); one ToolchainError line naming file and field."""
    where = root / name
    try:
        data = json.loads(where.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ToolchainError(f"{where}: no such file (is {root} {what}?)") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ToolchainError(f"{where}: unreadable: {exc}") from None
    try:
        record = decode(cls, data)
    except CodecError as exc:
        raise ToolchainError(f"{where}: {exc}") from None
    object.__setattr__(record, "root", root)
    return record


def load_project(path: str | Path) -> Project:
    return _load(Project, Path(path), PROJECT_FILE, "a project from `splitsdk generate`")


def load_firmware(path: str | Path) -> Firmware:
    return _load(Firmware, Path(path), FIRMWARE_FILE, "from `splitsdk build`")


def project_json(**fields: str) -> str:
    """The text of a `splitsdk-project.json` (the code generator's template calls this)."""
    return dumps_json(decode(Project, fields))


def require_compiler(target: Target) -> None:
    """Fail early, naming the Debian packages, when the target's cross compiler is not installed."""
    assert target.toolchain is not None
    compiler = f"{target.toolchain.triple}-g++"
    if shutil.which(compiler) is None:
        packages = " ".join(target.toolchain.debian_packages) or f"g++-{target.toolchain.triple}"
        raise ToolchainError(
            f"{compiler} not found: install it with `sudo apt-get install {packages}` "
            "(`splitsdk doctor` lists every missing tool)"
        )


# characters make reads as syntax in a target or prerequisite whatever CMake quotes (it then says only "Error 2")
MAKE_UNSAFE = ":"


def make_safe_paths(paths: dict[str, Path | None]) -> None:
    """Refuse, in one line naming it, a path the Makefiles CMake generates would break on."""
    for what, path in paths.items():
        bad = sorted({c for c in str(path.resolve()) if c in MAKE_UNSAFE}) if path is not None else []
        if bad:
            raise ToolchainError(f"{path}: the {what} path contains {' '.join(repr(c) for c in bad)}, which make "
                                 "cannot handle in a build path; move it to a path without")


def compile_project(
    project: Project,
    build_dir: Path,
    *,
    sanitize: bool = False,
    tflite_root: Path | None = None,
    jobs: int = 2,
) -> Path:
    """Configure and build with CMake; returns the (unstripped) binary."""
    paths = {"project": project.root, "build directory": build_dir, "TFLite root": tflite_root}
    make_safe_paths(paths)
    target = load_target(project.root / project.target_file)
    require_compiler(target)
    sysroot = ensure_sysroot(target)
    make_safe_paths({"sysroot": sysroot})
    forget_stale_cache(build_dir, sysroot, tflite_root)
    cmd = [
        "cmake",
        "-S",
        str(project.root.resolve()),
        "-B",
        str(build_dir),
        f"-DCMAKE_TOOLCHAIN_FILE={(project.root / project.toolchain_file).resolve()}",
        f"-DSPLITSDK_SYSROOT={sysroot}",
        f"-DSPLITSDK_SANITIZE={'ON' if sanitize else 'OFF'}",
        "-DCMAKE_BUILD_TYPE=" + ("Debug" if sanitize else "Release"),
    ]
    if tflite_root is not None:
        cmd.append(f"-DTFLITE_ROOT={tflite_root.resolve()}")
    run_tool(cmd, f"cmake configure ({project.root})")
    run_tool(["cmake", "--build", str(build_dir), "-j", str(jobs)], f"cmake build ({project.root})")
    binary = build_dir / BINARY
    if not binary.is_file():
        raise ToolchainError(f"cmake build ({project.root}) produced no {BINARY}")
    return binary


def forget_stale_cache(build_dir: Path, sysroot: Path, tflite_root: Path | None) -> bool:
    """Drop `build_dir`'s CMake cache when it was configured for another sysroot or TFLite root: CMake keeps
    the libraries it found (and a TFLite root given once) across configures, so a build after the sysroot
    changed, or without `--tflite-root` after one with it, would link the old files. True if dropped."""
    cache = build_dir / "CMakeCache.txt"
    try:
        lines = cache.read_text(errors="replace").splitlines()
    except OSError:
        return False
    cached = dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith(("#", "//")))
    want = {"SPLITSDK_SYSROOT": str(sysroot), "TFLITE_ROOT": str(tflite_root.resolve()) if tflite_root else ""}
    had = {name: next((v for k, v in cached.items() if k.split(":", 1)[0] == name), "") for name in want}
    if had == want:
        return False
    cache.unlink()
    shutil.rmtree(build_dir / "CMakeFiles", ignore_errors=True)
    return True


def compiler_runtime_dirs(target: Target) -> list[Path]:
    """Where the cross compiler keeps its own runtimes (libasan, libubsan) that the sysroot lacks."""
    assert target.toolchain is not None
    out = run_tool([f"{target.toolchain.triple}-gcc", "-print-file-name=libasan.so"], "locating the compiler runtimes")
    path = Path(out.strip())
    return [path.resolve().parent] if path.is_absolute() and path.exists() else []


def needed_libraries(binary: Path, libdir: Path, extra_dirs: list[Path] | None = None) -> list[Path]:
    """The DT_NEEDED closure of `binary`, resolved in the sysroot's `libdir` first (sorted by name)."""
    dirs = [libdir, *(extra_dirs or [])]
    found: dict[str, Path] = {}
    todo = [binary]
    while todo:
        out = run_tool(["readelf", "-d", str(todo.pop())], "readelf")
        for line in out.splitlines():
            if "(NEEDED)" in line and "[" in line:
                name = line.rsplit("[", 1)[1].rstrip("]")
                if name in found:
                    continue
                path = next((d / name for d in dirs if (d / name).exists()), None)
                if path is None:
                    raise ToolchainError(f"{binary.name} needs {name}, which the sysroot ({libdir}) lacks")
                found[name] = path
                todo.append(path.resolve())
    return [found[n] for n in sorted(found)]


def _strip(target: Target, src: Path, dst: Path) -> None:
    assert target.toolchain is not None
    run_tool([f"{target.toolchain.triple}-strip", "--strip-unneeded", "-o", str(dst), str(src)], "strip")


def _dir_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def library_neon(target: Target, libs: list[Path]) -> tuple[bool, str]:
    """Whether the TFLite library among `libs` was built for NEON, from its ELF build attributes (ARM;
    other architectures have no NEON)."""
    if target.toolchain is None or not target.toolchain.triple.startswith("arm"):
        return False, f"{target.name} is not an ARM target"
    lib = next((p for p in libs if p.name.startswith(("libtensorflow-lite.so", "libtensorflowlite"))), None)
    if lib is None:
        return False, "no TFLite library among the firmware's libraries (assumed off)"
    out = run_tool(["readelf", "-A", str(lib)], f"reading {lib.name}'s build attributes")
    neon = "Tag_Advanced_SIMD_arch" in out
    fp = re.search(r"Tag_FP_arch: (\S+)", out)
    return neon, f"{lib.name} ELF attributes: {'Advanced SIMD' if neon else 'no Advanced SIMD'}" + (
        f", FP {fp.group(1)}" if fp else "")


def shipped_runtime(target: Target, libs: list[Path], tflite_root: Path | None) -> RuntimeBuild:
    """The TFLite build a firmware ships: the sysroot's version (with --tflite-root: the version the prefix's
    tflite-build.json records, else 'custom'), NEON
    from the library's ELF attributes; XNNPACK off (the app's BuiltinOpResolver applies no delegate)."""
    assert target.toolchain is not None and target.toolchain.sysroot is not None
    neon, how = library_neon(target, libs)
    version = "custom" if tflite_root is not None else target.toolchain.sysroot.tflite_version
    try:  # a prefix from `splitsdk toolchain tflite-neon` records the version it built
        record = json.loads((tflite_root / "tflite-build.json").read_text()) if tflite_root is not None else {}
        version = str(record.get("tflite_version", version)) if isinstance(record, dict) else version
    except (OSError, ValueError):
        pass  # a prefix of the user's own: "custom"
    return RuntimeBuild(version, neon, False, f"NEON: {how}; XNNPACK: the app applies no delegate")


def runtime_warning(target: Target, shipped: RuntimeBuild | None) -> str:
    """One line when the build the target's rates assume is not the one shipped ('' otherwise)."""
    if target.runtime is None or shipped is None:
        return ""
    diff = target.runtime.differs(shipped)
    return (f"{target.name}'s latency model assumes TFLite {target.runtime.tflite} (NEON "
            f"{'on' if target.runtime.neon else 'off'}, XNNPACK {'on' if target.runtime.xnnpack else 'off'}) but "
            f"the firmware ships another build ({diff}): measure it with `splitsdk profile`") if diff else ""


def build_firmware(
    project_dir: Project | str | Path,
    out: str | Path,
    *,
    sanitize: bool = False,
    tflite_root: Path | None = None,
    build_dir: str | Path | None = None,
    jobs: int = 2,
    force: bool = False,
) -> Firmware:
    """Compile a generated project (loaded, or its folder) for its target and write the firmware directory `out`
    (an existing `out` that is not a firmware, no firmware.json, is refused unless `force`)."""
    dest = Path(out)
    check_replaceable(dest, FIRMWARE_FILE, "firmware", ToolchainError, force)
    project = project_dir if isinstance(project_dir, Project) else load_project(project_dir)
    target = load_target(project.root / project.target_file)
    if target.toolchain is None or target.toolchain.sysroot is None:
        raise ToolchainError(f"target '{target.name}' has no toolchain")
    bdir = Path(build_dir) if build_dir is not None else project.root / "build" / target.name
    binary = compile_project(project, bdir, sanitize=sanitize, tflite_root=tflite_root, jobs=jobs)
    sysroot = ensure_sysroot(target)
    libdir = sysroot / target.toolchain.sysroot.lib_dir
    # a --tflite-root library comes first: a rebuilt libtensorflow-lite has the SONAME of the sysroot's
    first = tflite_root / "lib" if tflite_root is not None else libdir
    libs = needed_libraries(binary, first, [libdir, *(compiler_runtime_dirs(target) if sanitize else [])])

    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{dest.name}-", dir=dest.parent) as tmp:
        fw = Path(tmp) / "fw"
        for sub in ("bin", "lib", "share/splitsdk-edge", "etc/init.d", "lib/systemd/system"):
            (fw / sub).mkdir(parents=True)
        if sanitize:  # sanitizer builds are for tests: keep the symbols
            shutil.copy2(binary, fw / "bin" / BINARY)
        else:
            _strip(target, binary, fw / "bin" / BINARY)
        for lib in libs:
            shutil.copy2(lib.resolve(), fw / "lib" / lib.name)
        model = project.root / project.model
        # a multi-split project's chain: every segment model beside the one the app is started with
        for m in sorted({model, *model.parent.glob("segment*.tflite")}):
            shutil.copy2(m, fw / "share/splitsdk-edge" / m.name)
        shutil.copy2(project.root / project.target_file, fw / "share/splitsdk-edge" / f"{target.name}.toml")
        shutil.copy2(project.root / project.init_script, fw / "etc/init.d" / Path(project.init_script).name)
        shutil.copy2(project.root / project.config, fw / "etc" / Path(project.config).name)
        shutil.copy2(project.root / project.systemd_unit, fw / "lib/systemd/system" / Path(project.systemd_unit).name)
        info = Firmware(
            target=target.name,
            plan_sha256=project.plan_sha256,
            binary_bytes=(fw / "bin" / BINARY).stat().st_size,
            firmware_bytes=_dir_bytes(fw),  # before firmware.json exists: it does not count itself
            libraries=tuple(lib.name for lib in libs),
            sanitized=sanitize,
            runtime=shipped_runtime(target, libs, tflite_root),
            model_file=model.name,
        )
        write_atomic(fw / FIRMWARE_FILE, dumps_json(info))
        check_replaceable(dest, FIRMWARE_FILE, "firmware", ToolchainError, force)  # appeared meanwhile?
        replace_dir(fw, dest)
    return load_firmware(dest)
