"""The profile contract the planner reads. Implementations live beside this file."""

from __future__ import annotations

from dataclasses import dataclass

from splitsdk.target import FLOAT_BITS

__all__ = ["FLOAT_BITS", "LatencyProfile", "Link"]


@dataclass(frozen=True)
class Link:
    """The uplink between camera and cloud: bytes -> milliseconds."""

    uplink_mbps: float
    rtt_ms: float = 0.0

    def transmit_ms(self, nbytes: float) -> float:
        """Time to send `nbytes` and get the answer's first byte back (one RTT), in ms."""
        if nbytes <= 0:
            return 0.0
        return nbytes * 8.0 / (self.uplink_mbps * 1e6) * 1e3 + self.rtt_ms


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
