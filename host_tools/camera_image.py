#!/usr/bin/env python3
"""Build an emulated Cortex-A7 camera image: `python host_tools/camera_image.py [FIRMWARE] -o IMAGE [...]`.

The same as `splitsdk image` (the work is done by splitsdk.camera.image, which the wheel needs too).
"""

from __future__ import annotations

import sys

from splitsdk.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["image", *sys.argv[1:]]))
