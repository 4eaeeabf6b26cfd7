"""What a camera may send, checked before it reaches the batch thread (and so another camera's batch).

- A HELLO's device id must be valid UTF-8 (the codec keeps invalid bytes as surrogates), without
  control characters, at most `DEVICE_ID_MAX_CHARS` characters (an X.509 common name's bound).
- A STATS body must be UTF-8 JSON text of at most `max_stats_bytes`, nested at most `max_stats_depth`
  deep (checked before parsing, so the parser cannot recurse away), holding an object and no
  NaN/Infinity; it is parsed off the event loop (`parse_stats` is plain CPU work).
- A FRAME must be for a split the receiver serves (`check_split`: 0 for a single-split bundle, a
  multi-split bundle's members), and a
  compressed tensor must decompress to exactly the size its checked dims and bits imply
  (`decompressed`: bounded, so a decompression bomb is refused before anything larger is allocated); a
  JPEG frame (codec JPEG, a CLOUD_ONLY bundle that sends the frame as a JPEG) must declare exactly the
  crossing's height, width and channels in its header, baseline, before a pixel is decoded, and decode
  cleanly (`decompressed` again); its pixels reach the model as the edge app maps them (`jpeg_input`).
- A FRAME's tensors must hold finite values once dequantised (a float32 payload may carry NaN or Inf,
  a huge scale may produce them): `require_finite`.
- A RESULT body is strict JSON (no NaN/Infinity): `strict_json` wraps the post-processing hook.

A refusal is a `ProtocolViolation`: the receiver answers it with an ERROR and closes that connection.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from splitsdk.wire import ErrorCode, FrameError, WireTensor, inflate
from splitsdk.wire.bundle import InputSpec, ManifestCrossing
from splitsdk.wire.compression import from_pixels

DEVICE_ID_MAX_CHARS = 64  # ub-common-name of X.509: with TLS the device id is the certificate's CN
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


class ProtocolViolation(Exception):
    """A well-formed message the receiver will not accept; ends the connection with an ERROR."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def check_device_id(device_id: str) -> str:
    """`device_id` if a HELLO may carry it, else ProtocolViolation naming the problem."""
    if not device_id:
        raise ProtocolViolation(ErrorCode.PROTOCOL, "empty device id")
    try:
        device_id.encode("utf-8")
    except UnicodeEncodeError:
        shown = device_id.encode("utf-8", errors="surrogateescape")
        raise ProtocolViolation(ErrorCode.PROTOCOL, f"device id {shown!r} is not valid UTF-8") from None
    if len(device_id) > DEVICE_ID_MAX_CHARS:
        raise ProtocolViolation(
            ErrorCode.PROTOCOL, f"device id is {len(device_id)} characters long, over {DEVICE_ID_MAX_CHARS}"
        )
    for ch in device_id:
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            raise ProtocolViolation(
                ErrorCode.PROTOCOL, f"device id {device_id!r} holds control character U+{ord(ch):04X}"
            )
    return device_id


def json_depth(text: str) -> int:
    """How deep `text`'s arrays and objects nest (brackets inside strings ignored), without recursing."""
    depth = deepest = 0
    for ch in _NOT_BRACKET.sub("", _JSON_STRING.sub("", text)):
        depth += 1 if ch in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_loads(text: str | bytes) -> Any:
    """json.loads refusing NaN, Infinity and -Infinity (Python's json accepts them)."""
    return json.loads(text, parse_constant=_no_constant)


def parse_stats(text: str, max_bytes: int, max_depth: int) -> dict[str, Any]:
    """A STATS body as the JSON object it must be; ProtocolViolation (BAD_FRAME) says what is wrong."""

    def bad(why: str) -> ProtocolViolation:
        return ProtocolViolation(ErrorCode.BAD_FRAME, f"bad frame: STATS {why}")

    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise bad("is not UTF-8 text") from None
    if size > max_bytes:
        raise bad(f"is {size} bytes, over the {max_bytes}-byte limit")
    depth = json_depth(text)
    if depth > max_depth:
        raise bad(f"nests {depth} deep, over the limit of {max_depth}")
    try:
        data = strict_loads(text)
    except ValueError as exc:
        raise bad(f"is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise bad(f"is not a JSON object ({type(data).__name__})")
    return data


def check_split(split: int, served: Sequence[int] = (0,)) -> None:
    """Refuse a FRAME for a split this receiver does not serve (a single-split bundle serves split 0, a
    multi-split bundle its members')."""
    if split not in served:
        which = f"split {served[0]} only" if len(served) == 1 else f"splits {', '.join(map(str, served))}"
        raise ProtocolViolation(ErrorCode.TENSOR_MISMATCH, f"frame is for split {split}, this receiver serves {which}")


def decompressed(tensor: WireTensor, index: int, crossing: ManifestCrossing) -> WireTensor:
    """`tensor` uncompressed: a zstd payload decompressed into exactly the bytes its dims and bits imply, a
    JPEG decoded into exactly its dims' pixels (the caller has checked them against the crossing, which
    bounds the size); a payload that declares or holds anything else is refused (BAD_FRAME) naming the
    tensor."""
    try:
        return inflate(tensor)
    except FrameError as exc:
        raise ProtocolViolation(ErrorCode.BAD_FRAME, f"bad frame: tensor {index} ({crossing.tensor}): {exc}") from None


def jpeg_input(tensor: WireTensor, spec: InputSpec) -> np.ndarray:
    """A decoded JPEG frame's pixels (`decompressed`: checked against the crossing's dims) as the model input,
    mapped as the edge app maps its pixels (real = pixel * scale + offset, the bundle's input)."""
    pixels = np.frombuffer(tensor.payload, dtype=np.uint8).reshape(tensor.dims[-3:])
    return from_pixels(pixels, spec.scale, spec.offset)


def require_finite(inputs: Sequence[np.ndarray], crossing: Sequence[ManifestCrossing]) -> None:
    """Refuse a frame whose dequantised tensors hold NaN or Inf, naming the first such tensor.

    One float64 sum per tensor: it is finite exactly when every float32 value is (no float32 values
    can overflow a float64 sum), and costs no temporary array."""
    for i, (x, c) in enumerate(zip(inputs, crossing, strict=True)):
        with np.errstate(invalid="ignore", over="ignore"):  # inf + -inf: NaN, refused below
            total = np.sum(x, dtype=np.float64)
        if not np.isfinite(total):
            raise ProtocolViolation(
                ErrorCode.BAD_FRAME, f"bad frame: tensor {i} ({c.tensor}) holds non-finite values (NaN or Inf)"
            )


class ResultNotJson(ValueError):
    """The post-processing hook produced a body that is not strict JSON (e.g. a NaN score)."""


def strict_json(post: Callable[[list[np.ndarray]], bytes]) -> Callable[[list[np.ndarray]], bytes]:
    """`post`, refusing (ResultNotJson) any body that is not strict JSON, so none is stored or sent."""

    def run(outputs: list[np.ndarray]) -> bytes:
        body = post(outputs)
        try:
            strict_loads(body)
        except ValueError as exc:
            raise ResultNotJson(f"the result is not valid JSON ({exc})") from None
        return body

    return run
