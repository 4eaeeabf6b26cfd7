"""Cross-build TFLite for an ARM target with NEON: the runtime the target's latency rates assume.

Debian's armhf libtensorflow-lite (what the sysroot ships) is built for the armhf baseline: VFPv3-D16, no
NEON, and its ruy is compiled without NEON too. `splitsdk toolchain tflite-neon TARGET` builds the same
TFLite from the same Debian source package with the target's compiler flags (`-mcpu=cortex-a7
-mfpu=neon-vfpv4 -mfloat-abi=hard` for cortex-a7) and installs include/ + lib/ into a cached prefix

    <splitsdk cache>/tflite/<target>-neon-<hash>

which `splitsdk build --tflite-root PREFIX` links (its firmware.json then says NEON on, read from the
library's ELF attributes).

The recipe, step by step:
  source   Debian's `tensorflow` source package (the one that builds the sysroot's libtensorflow-lite-dev),
           resolved with a `deb-src` line in the sysroot's private apt configuration, checked against the
           signed Sources index, unpacked once into `<cache>/tflite/src/`, Debian's patches applied.
  deps     a sysroot with the recipe's packages plus TFLite's Build-Depends (absl, cpuinfo, eigen, farmhash,
           fft2d, flatbuffers, fp16, gemmlowp, neon2sse, pthreadpool) from the same suite.
  ruy      built from source inside the TFLite build (`FETCHCONTENT_SOURCE_DIR_RUY`), with NEON: Debian's
           libruy-dev is compiled for the baseline, and with -DTFLITE_ENABLE_RUY=ON (Debian's choice, kept)
           every GEMM goes through ruy, so the system ruy would keep the heaviest kernels scalar. Why not
           -DTFLITE_ENABLE_RUY=OFF: int8 GEMMs would then go to gemmlowp (its per-channel path is NEON-only,
           cpu_backend_gemm_gemmlowp.h) and float ones to Eigen, another kernel library than the baseline
           build's: keeping ruy in both makes the baseline-vs-NEON comparison one of the instruction set
           alone, and ruy is what the target's int8 rate describes. Its
           source is Debian's `ruy` source package (the version Debian builds TFLite against), or a checkout
           given with `--ruy-source` (github.com/google/ruy at TFLite 2.14's pin, 3286a34c). `--system-ruy`
           links Debian's libruy-dev instead (no download; ruy's kernels then stay baseline: for quick checks).
  build    CMake with Debian's flags (debian/rules: shared library, XNNPACK off, system farmhash and
           pthreadpool), the generated project's own toolchain file (templates/edge-linux), in a temporary
           directory; the library and TFLite's headers are copied into a prefix there (`install`), renamed
           into place at the end (a half-built prefix is never visible; a second call returns at once). The
           build log stays beside the prefix.

XNNPACK stays off: the edge app's BuiltinOpResolver applies no delegate, so it would not run anyway.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

from splitsdk.cache import cache_dir
from splitsdk.errors import ToolchainError
from splitsdk.target import SysrootRecipe, Target
from splitsdk.toolchain.build import make_safe_paths, require_compiler
from splitsdk.toolchain.sysroot import download_source, ensure_sysroot
from splitsdk.toolchain.tools import last_error_line, run_tool

Tick = Callable[[str, int, int], None]  # (stage, done, total), as splitsdk.cli.progress draws it

# TFLite's Build-Depends (debian/control of the tensorflow source package) that the cross build compiles
# against; libruy-dev only with `system_ruy` (see the module docstring).
BUILD_DEPS = (
    "libabsl-dev",
    "libcpuinfo-dev",
    "libeigen3-dev",
    "libfarmhash-dev",
    "libfft2d-dev",
    "libflatbuffers-dev",
    "libfp16-dev",
    "libgemmlowp-dev",
    "libneon-2-sse-dev",
    "libpthreadpool-dev",
)
# The armhf baseline Debian compiles for (gcc's armhf defaults): what `neon=False` builds with.
BASELINE_FPU = "-mfpu=vfpv3-d16"
RECIPE_VERSION = 1  # bump when the recipe below changes what it builds


@dataclass(frozen=True)
class TfliteBuild:
    """What one TFLite cross build is made of; its hash names the cached prefix."""

    target: str
    tflite_version: str
    source: str  # the binary package (as the sysroot recipe pins it) whose Debian source package is built
    ruy: str  # where ruy's source comes from
    neon: bool
    cflags: tuple[str, ...]
    cmake_flags: tuple[str, ...]
    recipe: int = RECIPE_VERSION

    @property
    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]

    @property
    def name(self) -> str:
        return f"{self.target}-{'neon' if self.neon else 'baseline'}-{self.key}"


def tflite_cache() -> Path:
    """Where TFLite builds and their sources live: `<splitsdk cache>/tflite`."""
    return cache_dir("tflite")


def _sysroot_recipe(target: Target) -> SysrootRecipe:
    if target.toolchain is None or target.toolchain.sysroot is None:
        raise ToolchainError(f"target '{target.name}' ({target.path}) has no [toolchain.sysroot] recipe")
    if not target.toolchain.triple.startswith("arm"):
        raise ToolchainError(f"target '{target.name}' ({target.path}) is not an ARM target: NEON is an ARM extension")
    return target.toolchain.sysroot


def build_cflags(target: Target, neon: bool) -> tuple[str, ...]:
    """The target's compiler flags (`[toolchain] cflags`), NEON on; with `neon=False`, the armhf baseline FPU."""
    _sysroot_recipe(target)  # an ARM target with a sysroot recipe
    assert target.toolchain is not None
    flags = target.toolchain.cflags
    if not any(f.startswith("-mfpu=neon") for f in flags):
        raise ToolchainError(f"{target.path} [toolchain] cflags: no -mfpu=neon* flag (no NEON to build for)")
    return flags if neon else tuple(BASELINE_FPU if f.startswith("-mfpu=") else f for f in flags)


def tflite_source_package(target: Target) -> str:
    """The sysroot recipe's libtensorflow-lite-dev (with its pin): its Debian source package is what is built."""
    recipe = _sysroot_recipe(target)
    pin = next((p for p in recipe.packages if p.split("=", 1)[0] == "libtensorflow-lite-dev"), None)
    if pin is None:
        raise ToolchainError(f"{target.path} [toolchain.sysroot] packages: no libtensorflow-lite-dev to rebuild")
    return pin


def _unpack(tarballs: Sequence[Path], dest: Path, patches: bool) -> Path:
    """Unpack a Debian source package (orig tarball, then its debian/ tarball) into `dest` once, applying
    debian/patches/series with `patch -p1` when `patches`; the tree is renamed into place when complete."""
    if (dest / ".complete").is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{dest.name}-", dir=dest.parent) as tmp:
        work = Path(tmp) / "x"
        work.mkdir()
        with tarfile.open(tarballs[0]) as tar:
            tar.extractall(work, filter="data")
        tops = [p for p in work.iterdir()]
        root = tops[0] if len(tops) == 1 and tops[0].is_dir() else work
        for extra in tarballs[1:]:
            with tarfile.open(extra) as tar:
                tar.extractall(root, filter="data")
        series = root / "debian/patches/series"
        if patches and series.is_file():
            for line in series.read_text().splitlines():
                name = line.split("#", 1)[0].strip()
                if name:
                    run_tool(["patch", "-p1", "-N", "-i", str(root / "debian/patches" / name)],
                             f"applying debian/patches/{name}", cwd=root)
        (root / ".complete").write_text("\n")
        if (dest / ".complete").is_file():
            return dest  # another process unpacked it meanwhile: ours goes with `tmp`
        if dest.exists():
            shutil.rmtree(dest)  # an interrupted older unpack (no .complete)
        root.rename(dest)
    return dest


def fetch_tflite_source(target: Target) -> tuple[Path, str]:
    """The unpacked, patched TFLite source tree of the target's Debian suite, and its tarballs' identity."""
    src = tflite_cache() / "src"
    # `apt-get source` maps the binary package to its source; sid drops old versions: then the current one
    package = tflite_source_package(target)
    try:
        tarballs = download_source(target, package, src)
    except ToolchainError as exc:
        if "=" not in package:
            raise
        print(f"splitsdk: warning: {exc}; building the suite's current {package.split('=', 1)[0]} source",
              file=sys.stderr)
        tarballs = download_source(target, package.split("=", 1)[0], src)
    ident = " ".join(p.name for p in tarballs)
    stem = tarballs[-1].name.split(".debian.tar")[0]  # tensorflow_2.14.1+dfsg-3.1
    return _unpack(tarballs, src / stem, patches=True), ident


def fetch_ruy_source(target: Target, given: Path | None) -> tuple[Path, str]:
    """ruy's source: the checkout `given`, else Debian's `ruy` source package (unpacked once, cached)."""
    if given is not None:
        if not (given / "CMakeLists.txt").is_file() or not (given / "ruy").is_dir():
            raise ToolchainError(f"{given}: not a ruy source tree (no CMakeLists.txt and ruy/)")
        return given.resolve(), f"dir {given.resolve()}"
    src = tflite_cache() / "src"
    try:
        tarballs = download_source(target, "libruy-dev", src)
    except ToolchainError as exc:
        raise ToolchainError(f"{exc} (ruy's Debian source: pass a checkout of github.com/google/ruy with "
                             "--ruy-source, or --system-ruy)") from None
    stem = tarballs[-1].name.split(".debian.tar")[0]
    return _unpack(tarballs, src / stem, patches=False), " ".join(p.name for p in tarballs)


def write_toolchain_file(target: Target, cflags: Sequence[str], path: Path) -> Path:
    """The generated project's own CMake toolchain file (templates/<family>/cmake), for `cflags`."""
    import jinja2

    from splitsdk.codegen.render import template_root

    assert target.toolchain is not None and target.toolchain.sysroot is not None
    tc, sr = target.toolchain, target.toolchain.sysroot
    node = template_root(target.family or "edge-linux") / "cmake" / "__target__.toolchain.cmake.j2"
    app = SimpleNamespace(target_name=target.name, triple=tc.triple, cflags=tuple(cflags),
                          cmake_system_processor=tc.cmake_system_processor, sysroot_suite=sr.suite,
                          sysroot_arch=sr.arch, sysroot_lib_dir=sr.lib_dir)
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True,
                             lstrip_blocks=True, autoescape=False)
    env.globals["banner"] = lambda open_, close="": f"{open_} Written by `splitsdk toolchain tflite-neon`."
    path.write_text(env.from_string(node.read_text(encoding="utf-8")).render(app=app))
    return path


def cmake_flags(sysroot: Path, lib_dir: str, ruy: Path | None) -> tuple[str, ...]:
    """Debian's TFLite configuration (debian/rules), its *_DIR paths inside the build sysroot; ruy built from
    the source tree `ruy`, or (None) the sysroot's libruy-dev."""
    lib = sysroot / lib_dir
    return (
        "-Wno-dev",
        "-DCMAKE_BUILD_TYPE=Release",
        "-DBUILD_SHARED_LIBS=ON",
        "-DCMAKE_POSITION_INDEPENDENT_CODE=ON",  # ruy's static libraries go into the shared library
        # TFLite's install rule exports only system dependencies (not ruy built in-tree): `install` copies
        "-DTFLITE_ENABLE_INSTALL=OFF",
        "-DTFLITE_ENABLE_GPU=OFF",
        "-DTFLITE_ENABLE_NNAPI=OFF",
        "-DTFLITE_ENABLE_RESOURCE=ON",
        "-DTFLITE_ENABLE_RUY=ON",
        "-DTFLITE_ENABLE_XNNPACK=OFF",
        "-DCMAKE_FIND_PACKAGE_PREFER_CONFIG=ON",
        "-DSYSTEM_FARMHASH=ON",
        "-DSYSTEM_PTHREADPOOL=ON",
        f"-Dabsl_DIR={lib}/cmake/absl",
        f"-Dcpuinfo_DIR={lib}/cmake/cpuinfo",
        f"-DEigen3_DIR={sysroot}/usr/share/eigen3/cmake",
        f"-Dfft2d_DIR={lib}/cmake/fft2d",
        f"-DFlatBuffers_DIR={lib}/cmake/flatbuffers",
        f"-DGEMMLOWP_SOURCE_DIR={sysroot}/usr/include/gemmlowp",
        f"-DNEON_2_SSE_DIR={sysroot}/usr/lib/cmake/NEON_2_SSE",
        f"-DFETCHCONTENT_SOURCE_DIR_RUY={ruy}" if ruy is not None else f"-Druy_DIR={lib}/cmake/ruy",
        "-DFETCHCONTENT_FULLY_DISCONNECTED=ON",  # nothing is downloaded during the build
        # the sysroot's libstdc++ is newer than the cross compiler's: link against it (as the edge app does)
        f"-DCMAKE_SHARED_LINKER_FLAGS=-L{lib} -Wl,-rpath-link,{lib}",
    )


@dataclass(frozen=True)
class Configured:
    """A configured TFLite build tree (what `configure` leaves): build it whole or a few targets of it."""

    build: TfliteBuild
    build_dir: Path
    sysroot: Path
    source: Path  # the patched source tree (its tensorflow/lite is the CMake project)


def _ruy_id(ruy_source: Path | None, system_ruy: bool) -> str:
    if system_ruy:
        return "system libruy-dev"
    return f"dir {ruy_source.resolve()}" if ruy_source is not None else "debian source of libruy-dev"


def plan_build(target: Target, *, neon: bool = True, ruy_source: Path | None = None,
               system_ruy: bool = False) -> TfliteBuild:
    """What a build for `target` is made of (no download): its `name` is the cached prefix's."""
    recipe = _sysroot_recipe(target)
    ruy = _ruy_id(ruy_source, system_ruy)
    # the flags with placeholders for this machine's paths: the hash does not depend on where the cache is
    flags = cmake_flags(Path("SYSROOT"), recipe.lib_dir, None if system_ruy else Path("RUY"))
    return TfliteBuild(target.name, recipe.tflite_version, f"debian source of {tflite_source_package(target)}",
                       ruy, neon, build_cflags(target, neon), flags)


def configure(target: Target, build_dir: Path, *, neon: bool = True, ruy_source: Path | None = None,
              system_ruy: bool = False) -> Configured:
    """Fetch the sources and the build sysroot, and configure TFLite's CMake in `build_dir`."""
    if system_ruy and ruy_source is not None:
        raise ToolchainError("give a ruy source tree or the system ruy, not both")
    info = plan_build(target, neon=neon, ruy_source=ruy_source, system_ruy=system_ruy)
    recipe = _sysroot_recipe(target)
    require_compiler(target)
    ruy = None if system_ruy else fetch_ruy_source(target, ruy_source)[0]
    source, _ = fetch_tflite_source(target)
    sysroot = ensure_sysroot(target, extra=BUILD_DEPS + (("libruy-dev",) if system_ruy else ()))
    make_safe_paths({"build directory": build_dir, "sysroot": sysroot, "TFLite source": source})
    build_dir.mkdir(parents=True, exist_ok=True)
    flags = tuple(_relocate_config(f, sysroot, build_dir / "configs")
                  for f in cmake_flags(sysroot, recipe.lib_dir, ruy))
    toolchain = write_toolchain_file(target, info.cflags, build_dir / f"{target.name}.toolchain.cmake")
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    run_tool(["cmake", *generator, "-S", source / "tensorflow/lite", "-B", build_dir,
              f"-DCMAKE_TOOLCHAIN_FILE={toolchain}", f"-DSPLITSDK_SYSROOT={sysroot}", *flags],
             f"configuring TFLite for {target.name} ({build_dir})", timeout_s=1800)
    return Configured(info, build_dir, sysroot, source)


_ABS_USR = re.compile(r'(?<=["\s;])/usr/')


def _relocate_config(flag: str, sysroot: Path, dest: Path) -> str:
    """A `-D<pkg>_DIR=` flag whose CMake package config names absolute /usr/ paths (Debian's fft2d does): point
    it at a copy with those paths inside `sysroot` (CMAKE_SYSROOT does not apply to imported targets)."""
    m = re.match(r"-D(\w+)_DIR=(.+)", flag)
    if m is None or not Path(m[2]).is_dir():
        return flag
    files = {p: p.read_text(errors="replace") for p in Path(m[2]).glob("*.cmake")}
    relative = any("_IMPORT_PREFIX" in text or "PACKAGE_PREFIX_DIR" in text for text in files.values())
    if relative or not any(_ABS_USR.search(text) for text in files.values()):
        return flag  # a config that finds its files relative to itself works in place
    out = dest / m[1]
    out.mkdir(parents=True, exist_ok=True)
    for path, text in files.items():
        (out / path.name).write_text(_ABS_USR.sub(f"{sysroot}/usr/", text))
    return f"-D{m[1]}_DIR={out}"


_STEP = re.compile(r"^\[(\d+)/(\d+)\]")


def build_targets(conf: Configured, targets: Sequence[str] = (), *, jobs: int = 2, log: Path | None = None,
                  tick: Tick | None = None) -> None:
    """`cmake --build` the configured tree (only `targets` when given, e.g. one object file), its output to
    `log`; `tick("compile", done, total)` follows Ninja's `[done/total]` lines."""
    cmd = ["cmake", "--build", str(conf.build_dir), "-j", str(jobs)]
    for t in targets:
        cmd += ["--target", t]
    out = log or conf.build_dir / "splitsdk-build.log"
    with out.open("w") as f:
        f.write(" ".join(cmd) + "\n")
        f.flush()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            f.write(line)
            f.flush()  # the log follows the build (`tail -f`)
            m = _STEP.match(line)
            if m and tick:
                tick("compile", int(m[1]), int(m[2]))
        proc.wait()
    if proc.returncode != 0:
        raise ToolchainError(f"building TFLite for {conf.build.target} failed (exit {proc.returncode}): "
                             f"{last_error_line(out.read_text(errors='replace'))} (log: {out})")


def object_target(conf: Configured, source: str) -> str:
    """The build target of the object file compiled from `source` (a path below tensorflow/lite)."""
    name = f"{source}.o"
    if not (conf.build_dir / "build.ninja").is_file():
        return name  # CMake's Makefiles have a `<source>.o` rule for each object
    out = run_tool(["ninja", "-C", str(conf.build_dir), "-t", "targets", "all"], "listing the build targets")
    for line in out.splitlines():
        t = line.split(":", 1)[0].strip()
        if t.endswith("/" + name) and "tensorflow-lite.dir" in t:
            return t
    raise ToolchainError(f"the configured TFLite build has no object for {source}")


def install(conf: Configured, prefix: Path) -> list[Path]:
    """Copy the built library (with its SONAME links) to `prefix`/lib and TFLite's headers to `prefix`/include
    (every header below tensorflow/lite, as the -dev package's /usr/include/tensorflow/lite); returns the libs."""
    built = sorted(conf.build_dir.glob("libtensorflow-lite.so*"))
    if not any(p.is_file() and not p.is_symlink() for p in built):
        raise ToolchainError(f"the TFLite build in {conf.build_dir} produced no libtensorflow-lite.so")
    (prefix / "lib").mkdir(parents=True)
    for lib in built:
        dst = prefix / "lib" / lib.name
        if lib.is_symlink():
            dst.symlink_to(lib.readlink())
        else:
            shutil.copy2(lib, dst)
    lite = conf.source / "tensorflow/lite"
    for header in lite.rglob("*.h"):
        dst = prefix / "include/tensorflow/lite" / header.relative_to(lite)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(header, dst)
    return [prefix / "lib" / lib.name for lib in built]


def prefix_path(build: TfliteBuild) -> Path:
    return tflite_cache() / build.name


def ensure_tflite(
    target: Target,
    *,
    neon: bool = True,
    ruy_source: Path | None = None,
    system_ruy: bool = False,
    jobs: int = 2,
    build_dir: Path | None = None,
    tick: Tick | None = None,
    announce: bool = True,
) -> Path:
    """The cached TFLite prefix (include/, lib/) for `target`, cross-built first when not cached (a cached
    one is found without downloading anything: its name hashes the recipe). The build tree is temporary
    unless `build_dir` is given: that one is kept, and a second call resumes an interrupted build there."""
    dest = prefix_path(plan_build(target, neon=neon, ruy_source=ruy_source, system_ruy=system_ruy))
    if (dest / ".complete").is_file():
        return dest
    cache = tflite_cache()
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{target.name}-build-", dir=cache) as tmp:
        work = Path(tmp)
        conf = configure(target, build_dir or work / "build", neon=neon, ruy_source=ruy_source,
                         system_ruy=system_ruy)
        log = cache / f"{conf.build.name}.log"
        if announce:
            print(f"splitsdk: building TFLite {conf.build.tflite_version} for {target.name} "
                  f"({' '.join(conf.build.cflags)}) into {dest}; log: {log}", file=sys.stderr)
        started = time.monotonic()
        build_targets(conf, jobs=jobs, log=log, tick=tick)
        prefix = work / "prefix"
        libs = install(conf, prefix)
        manifest = {**asdict(conf.build), "build_seconds": round(time.monotonic() - started),
                    "library_bytes": max(p.stat().st_size for p in libs if not p.is_symlink())}
        (prefix / "tflite-build.json").write_text(json.dumps(manifest, indent=2) + "\n")
        (prefix / ".complete").write_text("\n")
        if dest.exists():
            shutil.rmtree(dest)  # an interrupted older build (no .complete)
        try:
            prefix.rename(dest)
        except OSError:
            if not (dest / ".complete").is_file():
                raise
    return dest
