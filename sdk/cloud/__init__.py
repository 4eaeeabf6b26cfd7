"""The cloud receiver daemon (`splitsdk serve`): TLS, limits, dynamic batching, durable results.

`serve(bundle, config)` runs it in the foreground (what `splitsdk serve` calls); `Receiver(bundle,
config)` is the asyncio server itself for programs that embed it; `make_certs` creates the camera CA
and certificates. Importing this package loads no TensorFlow, Keras, planner or converter: a Keras
cloud model is loaded (with Keras) only when a receiver starts on a bundle that has one.
"""

from __future__ import annotations

from splitsdk.cloud.certs import make_certs
from splitsdk.cloud.config import ReceiverConfig, load_config
from splitsdk.cloud.daemon import serve, systemd_unit
from splitsdk.cloud.server import Receiver

__all__ = ["Receiver", "ReceiverConfig", "load_config", "make_certs", "serve", "systemd_unit"]
