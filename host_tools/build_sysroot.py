#!/usr/bin/env python3
"""Build (or reuse) the cached sysroot of each deployable target: `python host_tools/build_sysroot.py [TARGET...]`.

With no argument, every shipped target that has a [toolchain.sysroot] recipe. `make setup` runs it.
The work is done by splitsdk.toolchain.sysroot (the wheel's `splitsdk build` needs it too).
"""

from __future__ import annotations

import sys

from splitsdk.errors import SplitSdkError
from splitsdk.target import list_targets, load_target
from splitsdk.toolchain.sysroot import ensure_sysroot


def main(argv: list[str]) -> int:
    names = argv or [n for n in list_targets() if (t := load_target(n)).toolchain and t.toolchain.sysroot]
    try:
        for name in names:
            ensure_sysroot(load_target(name), log=True)
    except SplitSdkError as exc:
        print(f"build_sysroot: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
