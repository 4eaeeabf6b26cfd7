"""Typed errors. The CLI turns each into one line and a non-zero exit; `-v` shows the traceback."""

from __future__ import annotations


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (its type name when empty), for one-line errors."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


class SplitSdkError(Exception):
    """Base of every error splitsdk raises for bad input or an impossible request (CLI exit code 1;
    2 is argparse's, for usage errors)."""

    exit_code = 1


class ModelError(SplitSdkError):
    """A model file that is missing, corrupt, of an unknown format or holding an unsupported layer."""


class DynamicShapeError(ModelError):
    """A model input with dynamic dims and no shape given to fix them."""


class UnsupportedLayerError(ModelError):
    """A layer type the graph importer cannot analyse."""


class DataError(SplitSdkError):
    """Calibration or evaluation data that cannot be read."""


class TargetError(SplitSdkError):
    """An unknown target or a malformed target descriptor."""


class ProfileError(SplitSdkError):
    """A measured latency table that does not match the model."""


class PlanError(SplitSdkError):
    """An invalid plan.json or a planning request that cannot be answered."""


class WireError(SplitSdkError):
    """A malformed frame on the wire."""


class BundleError(SplitSdkError):
    """A deployment bundle (manifest.json + edge/cloud models) that is missing or malformed."""


class ReceiverError(SplitSdkError):
    """A receiver that cannot start: bad config, unreadable certificates, port in use."""


class LinkError(SplitSdkError, ValueError):
    """A link rate or RTT that cannot be parsed (a ValueError too, so argparse `type=` reports it)."""


class ConvertError(SplitSdkError):
    """A plan that cannot be turned into a model the target runs."""


class ToolchainError(SplitSdkError):
    """A cross toolchain, sysroot, QEMU or build step that is missing or fails."""


class GenerateError(SplitSdkError):
    """A bundle/target combination the code generator cannot render."""


class UsageError(SplitSdkError):
    """A command line that does not parse (exit code 2, like argparse's own usage errors)."""

    exit_code = 2
