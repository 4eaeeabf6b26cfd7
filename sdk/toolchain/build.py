"""`splitsdk build PROJECT -o FIRMWARE`: cross-compile a generated project and collect the firmware.

The project's `splitsdk-project.json` names its target; the target's sysroot comes from the cache
(built on first use). CMake runs with the project's own toolchain file, so what `build` does is what a
user typing `cmake` would get. The firmware directory holds what goes on the camera:

    bin/splitsdk-edge                       stripped binary
    lib/                                    the shared libraries it needs, from the sysroot
    share/splitsdk-edge/edge.tflite         the edge model
    etc/init.d/S90splitsdk-edge             BusyBox init script
    etc/splitsdk-edge.conf                  config file (server, device id, ...)
    lib/systemd/system/splitsdk-edge.service
    firmware.json                           target, plan hash, sizes
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from splitsdk.errors import ToolchainError
from splitsdk.target import Target, load_target
from splitsdk.toolchain.sysroot import ensure_sysroot

PROJECT_FILE = "splitsdk-project.json"
FIRMWARE_FILE = "firmware.json"
BINARY = "splitsdk-edge"


@dataclass(frozen=True)
class Project:
    """A generated project on disk, as its `splitsdk-project.json` describes it."""

    root: Path
    target: str
    target_file: str
    plan_sha256: str
    toolchain_file: str
    model: str
    init_script: str
    systemd_unit: str
    config: str


@dataclass(frozen=True)
class Firmware:
    """A built firmware directory (`firmware.json`)."""

    root: Path
    target: str
    plan_sha256: str
    binary_bytes: int  # stripped
    firmware_bytes: int  # everything under root
    libraries: tuple[str, ...]
    sanitized: bool

    @property
    def target_file(self) -> Path:
        """The target descriptor the firmware was built for (a copy: custom targets work too)."""
        return self.root / "share" / BINARY / f"{self.target}.toml"

    @property
    def binary(self) -> Path:
        return self.root / "bin" / BINARY

    @property
    def model(self) -> Path:
        return self.root / "share" / BINARY / "edge.tflite"


def load_project(path: str | Path) -> Project:
    root = Path(path)
    where = root / PROJECT_FILE
    try:
        data = json.loads(where.read_text())
        return Project(
            root=root,
            target=data["target"],
            target_file=data["target_file"],
            plan_sha256=data["plan_sha256"],
            toolchain_file=data["toolchain_file"],
            model=data["model"],
            init_script=data["init_script"],
            systemd_unit=data["systemd_unit"],
            config=data["config"],
        )
    except FileNotFoundError:
        raise ToolchainError(f"{where}: no such file (is {root} a project from `splitsdk generate`?)") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ToolchainError(f"{where}: unreadable project description: {exc!r}") from None


def load_firmware(path: str | Path) -> Firmware:
    root = Path(path)
    try:
        data = json.loads((root / FIRMWARE_FILE).read_text())
        data["libraries"] = tuple(data["libraries"])
        return Firmware(root=root, **{k: v for k, v in data.items() if k != "root"})
    except FileNotFoundError:
        raise ToolchainError(f"{root / FIRMWARE_FILE}: no such file (is {root} from `splitsdk build`?)") from None
    except (OSError, ValueError, TypeError) as exc:
        raise ToolchainError(f"{root / FIRMWARE_FILE}: unreadable: {exc!r}") from None


def run_tool(cmd: list[str], what: str, cwd: Path | None = None) -> str:
    """Run a host tool; a missing tool or a failure ends in one ToolchainError line."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, check=False)
    except FileNotFoundError:
        raise ToolchainError(f"{what}: '{cmd[0]}' is not installed (run `make setup`)") from None
    if proc.returncode != 0:
        lines = (proc.stdout + proc.stderr).strip().splitlines()
        errors = [ln for ln in lines if "error" in ln.lower()] or lines
        raise ToolchainError(f"{what} failed: {' | '.join(errors[-4:])}")
    return proc.stdout


def require_compiler(target: Target) -> None:
    """Fail early, naming the Debian packages, when the target's cross compiler is not installed."""
    assert target.toolchain is not None
    compiler = f"{target.toolchain.triple}-g++"
    if shutil.which(compiler) is None:
        packages = " ".join(target.toolchain.debian_packages) or "its cross compiler"
        raise ToolchainError(f"{compiler} not found: install {packages} (`make setup` does, on Debian)")


def compile_project(
    project: Project,
    build_dir: Path,
    *,
    sanitize: bool = False,
    tflite_root: Path | None = None,
    jobs: int = 2,
) -> Path:
    """Configure and build with CMake; returns the (unstripped) binary."""
    target = load_target(project.root / project.target_file)
    require_compiler(target)
    sysroot = ensure_sysroot(target)
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


def build_firmware(
    project_dir: str | Path,
    out: str | Path,
    *,
    sanitize: bool = False,
    tflite_root: Path | None = None,
    build_dir: str | Path | None = None,
    jobs: int = 2,
) -> Firmware:
    """Compile `project_dir` for its target and write the firmware directory `out` (replaced whole)."""
    project = load_project(project_dir)
    target = load_target(project.root / project.target_file)
    if target.toolchain is None or target.toolchain.sysroot is None:
        raise ToolchainError(f"target '{target.name}' has no toolchain")
    bdir = Path(build_dir) if build_dir is not None else project.root / "build" / target.name
    binary = compile_project(project, bdir, sanitize=sanitize, tflite_root=tflite_root, jobs=jobs)
    sysroot = ensure_sysroot(target)
    libdir = sysroot / target.toolchain.sysroot.lib_dir
    libs = needed_libraries(binary, libdir, compiler_runtime_dirs(target) if sanitize else None)

    dest = Path(out)
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
        shutil.copy2(project.root / project.model, fw / "share/splitsdk-edge/edge.tflite")
        shutil.copy2(project.root / project.target_file, fw / "share/splitsdk-edge" / f"{target.name}.toml")
        shutil.copy2(project.root / project.init_script, fw / "etc/init.d" / Path(project.init_script).name)
        shutil.copy2(project.root / project.config, fw / "etc" / Path(project.config).name)
        shutil.copy2(project.root / project.systemd_unit, fw / "lib/systemd/system" / Path(project.systemd_unit).name)
        info = Firmware(
            root=dest,
            target=target.name,
            plan_sha256=project.plan_sha256,
            binary_bytes=(fw / "bin" / BINARY).stat().st_size,
            firmware_bytes=0,
            libraries=tuple(lib.name for lib in libs),
            sanitized=sanitize,
        )
        record = {k: v for k, v in asdict(info).items() if k != "root"}
        record["firmware_bytes"] = _dir_bytes(fw)
        (fw / FIRMWARE_FILE).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(fw, dest)
    return load_firmware(dest)
