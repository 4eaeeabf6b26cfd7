"""Errors of the camera image, the emulated camera and `flash` (all ToolchainError subclasses)."""

from __future__ import annotations

from splitsdk.errors import ToolchainError


class CameraError(ToolchainError):
    """The emulated camera cannot be built, booted, reached or stopped."""


class FlashError(ToolchainError):
    """`flash` refused or failed; the message says which version the camera still runs."""

    exit_code = 3
