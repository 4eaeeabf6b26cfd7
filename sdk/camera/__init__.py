"""The emulated camera: a bootable Cortex-A7 image (`splitsdk image`), booting it under QEMU
(`splitsdk camera up/down`), and installing firmware on a camera over SSH (`splitsdk flash`)."""

from splitsdk.camera.errors import CameraError, FlashError

__all__ = ["CameraError", "FlashError"]
