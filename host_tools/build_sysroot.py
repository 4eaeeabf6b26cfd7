#!/usr/bin/env python3
"""`python host_tools/build_sysroot.py [TARGET...]`: the same as `splitsdk toolchain install TARGET...`.

With no argument, every shipped target that has a [toolchain.sysroot] recipe. Kept for the references
to it (the generated CMake toolchain file names it); `make setup` runs the command itself.
"""

from __future__ import annotations

import sys

from splitsdk.cli.main import main
from splitsdk.toolchain.doctor import deployable_targets

if __name__ == "__main__":
    sys.exit(main(["toolchain", "install", *(sys.argv[1:] or [t.name for t in deployable_targets()])]))
