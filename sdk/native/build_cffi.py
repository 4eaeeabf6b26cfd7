"""cffi (API mode) build of `splitsdk._native` from the shared C sources in this folder.

setup.py names `ffibuilder` in `cffi_modules`, so every `pip install` / `pip wheel` compiles the
extension; the C files themselves stay free of anything Python-specific because the same files are
copied into the generated edge projects.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from cffi import FFI

SOURCES = ["splitpack.c", "splitframe.c", "splitcodec.c"]

HEADERS = ["splitpack.h", "splitframe.h", "splitcodec.h"]  # in dependency order
HERE = Path(__file__).resolve().parent


def cdef_of(header: str) -> str:
    """The declarations of a header as cffi's cdef reads them: the part inside `extern "C"`, without
    comments and preprocessor lines, each `#define NAME value` as `#define NAME ...` (cffi takes the value
    from the compiled header) and array sizes given by such a macro as its number. The headers stay the
    one source of the C API."""
    text = re.sub(r"/\*.*?\*/|//[^\n]*", "", header, flags=re.S)
    body = text.split('extern "C" {', 1)[1].split("#ifdef __cplusplus", 1)[0]
    values = {m[1]: m[2] for m in re.finditer(r"#define\s+(\w+)\s+(\d+)u?\b", body)}
    lines = []
    for line in body.splitlines():
        define = re.match(r"#define\s+(\w+)\s+\S", line)
        if define:
            lines.append(f"#define {define.group(1)} ...")
        elif line.strip() and not line.startswith("#"):
            lines.append(re.sub(r"\[(\w+)\]", lambda m: f"[{values.get(m[1], m[1])}]", line))
    return "\n".join(lines)


CDEF = "const char *splitsdk_native_hash(void);\n" + "\n".join(
    cdef_of((HERE / name).read_text(encoding="utf-8")) for name in HEADERS
)


def _source_hash() -> str:
    """Same digest as splitsdk.native.source_hash(), computed without importing the package."""
    digest = hashlib.sha256()
    for name in ("splitpack.h", "splitpack.c", "splitframe.h", "splitframe.c", "splitcodec.h", "splitcodec.c"):
        digest.update(name.encode() + b"\0" + (HERE / name).read_bytes())
    return digest.hexdigest()


ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "splitsdk._native",
    '#include "splitpack.h"\n#include "splitframe.h"\n#include "splitcodec.h"\n'
    f'static const char *splitsdk_native_hash(void) {{ return "{_source_hash()}"; }}\n',
    # Relative paths: setuptools refuses absolute source paths in wheels.
    sources=[f"sdk/native/{name}" for name in SOURCES],
    include_dirs=["sdk/native"],
    libraries=["zstd"],  # the system libzstd (libzstd-dev; host_tools/setup_system.sh installs it)
    extra_compile_args=["-std=c99", "-O3", "-Wall", "-Wextra"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
