"""The profile contract the planner reads. Implementations live beside this file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from splitsdk.target import FLOAT_BITS

__all__ = ["FLOAT_BITS", "LatencyProfile", "Link"]


Bytes = TypeVar("Bytes", float, "np.ndarray")


@dataclass(frozen=True)
class Link:
    """The uplink between camera and cloud: bytes -> milliseconds.

    The one link model: `transmit_ms` for a number of bytes, `transmit_ms_array` for a column of them
    (exhaustive search), `ms_per_byte` for the linear part (linear programs, min-cut capacities).
    """

    uplink_mbps: float
    rtt_ms: float = 0.0

    def send_ms(self, nbytes: Bytes) -> Bytes:
        """Time on the wire for `nbytes` (a number or an array), without the RTT."""
        return nbytes * 8.0 / (self.uplink_mbps * 1e6) * 1e3

    @property
    def ms_per_byte(self) -> float:
        """Milliseconds per byte sent: `transmit_ms` is `nbytes * ms_per_byte + rtt_ms` for nbytes > 0."""
        return self.send_ms(1.0)

    def transmit_ms(self, nbytes: float) -> float:
        """Time to send `nbytes` and get the answer's first byte back (one RTT), in ms; nothing sent is 0."""
        if nbytes <= 0:
            return 0.0
        return self.send_ms(nbytes) + self.rtt_ms

    def transmit_ms_array(self, nbytes: np.ndarray) -> np.ndarray:
        """`transmit_ms` of each element of `nbytes` (the same floating-point values)."""
        return np.where(nbytes > 0, self.send_ms(nbytes) + self.rtt_ms, 0.0)


@dataclass
class LatencyProfile:
    """Per-layer latency of one model on an edge device and a cloud device.

    `edge[layer][(wbits, abits)]` and `cloud[layer]` are milliseconds. For layers without weights
    the weight bits are ignored (every wbits key holds the same value). `source` says where the
    numbers came from ("analytic", "scalesim", "measured:<file>").
    """

    edge_device: str
    cloud_device: str
    edge: dict[str, dict[tuple[int, int], float]]
    cloud: dict[str, float]
    source: str = "analytic"

    def edge_ms(self, layer: str, wbits: int, abits: int) -> float:
        return self.edge[layer][(wbits, abits)]

    def cloud_ms(self, layer: str) -> float:
        return self.cloud[layer]
