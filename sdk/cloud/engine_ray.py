"""The cloud halves on Ray Serve: one Serve application per cloud half, the receivers send it decoded batches.

`deploy(bundle, engine)` runs the bundle's cloud model as a Serve deployment (`CloudModel`) named
`app_name(bundle, engine)` (`splitsdk-<first 16 hex of the plan hash>` unless `[engine] app` names one), so
that several bundles (plans) run side by side on one cluster. A multi-split bundle has one cloud half per
member: each is its own application, `<name>-split<k>` (`deploy(bundle, engine, split=k)`). The bundle's files
travel with the deployment (a replica on another machine needs no shared disk). Its replicas join the batches
of all receivers (`@serve.batch`, up to `engine.max_batch` frames), reserve `engine.num_cpus` CPUs each, and
autoscale between `engine.replicas` and `engine.max_replicas` when that is larger.

`RayRunner` is the receiver's side: a `Runner` (batched crossing tensors -> batched outputs) that sends
the batch to the application and waits up to `engine.timeout_s`; a failed round trip (a replica killed
mid-batch, the cluster unreachable) is retried `engine.retries` times, then raised, so that the
receiver answers those frames with an ERROR: a result is stored, and only then acknowledged, only when
the model did answer. A receiver deploys the application only when none of that name runs yet (the
next receivers join it); `splitsdk deploy` (re)deploys it with the settings given.

Ray's own logging is kept out of the receiver's and the CLI's output (the driver does not echo the
workers' logs; Ray's loggers are set to ERROR).
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from splitsdk.cloud.config import EngineConfig
from splitsdk.errors import ReceiverError, first_line
from splitsdk.wire.bundle import Bundle, load_bundle

# Serve's router waits this long for a replica's queue length; its default (0.1 s) logs a warning per
# request on a loaded machine
os.environ.setdefault("RAY_SERVE_QUEUE_LENGTH_RESPONSE_DEADLINE_S", "1.0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray  # noqa: E402  (after the environment it reads)
from ray import serve  # noqa: E402

RAY_LOGGERS = ("ray", "ray.serve", "ray.data", "ray.train", "ray.tune")
MAX_BUNDLE_FILE = 512 * 1024 * 1024
RETRY_PAUSE_S = 0.5


def quiet_ray() -> None:
    """Ray's loggers to ERROR, without handlers of their own reaching our stderr."""
    for name in RAY_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(logging.ERROR)


def connect(address: str) -> None:
    """Join the Ray cluster at `address` ("auto", HOST:PORT of its head, ray://HOST:PORT) once per process."""
    if ray.is_initialized():
        return
    quiet_ray()
    try:
        ray.init(
            address=address,
            namespace="splitsdk",
            log_to_driver=False,
            logging_level=logging.ERROR,
            configure_logging=True,
        )
    except Exception as exc:  # ConnectionError, ValueError, RuntimeError: all mean "no cluster there"
        raise ReceiverError(
            f"engine.ray_address: cannot reach the Ray cluster at {address}: {first_line(exc)}"
        ) from None
    quiet_ray()


def app_name(bundle: Bundle, engine: EngineConfig, split: int | None = None) -> str:
    """The Serve application of the bundle's cloud half (of member `split` of a multi-split bundle)."""
    name = engine.app or f"splitsdk-{bundle.plan_sha256[:16]}"
    return name if split is None else f"{name}-split{split}"


def cloud_halves(bundle: Bundle) -> list[int | None]:
    """What `deploy` takes as `split` for each cloud half of the bundle: None for a single-split bundle, else
    each member's split."""
    return list(bundle.split_indices) if bundle.manifest.splits else [None]


def bundle_files(bundle: Bundle) -> dict[str, bytes]:
    """The bundle's top-level files (manifest, plan, models), by name: what a replica needs to load it."""
    files = {}
    for path in sorted(bundle.root.iterdir()):
        if path.is_file() and path.stat().st_size <= MAX_BUNDLE_FILE:
            files[path.name] = path.read_bytes()
    return files


@serve.deployment
class CloudModel:
    """A Serve replica of one bundle's cloud model (member `split`'s of a multi-split bundle); a request is one
    receiver's batch (list of arrays)."""

    def __init__(self, files: dict[str, bytes], max_batch: int, batch_wait_s: float, split: int | None = None) -> None:
        from splitsdk.cloud.model import load_cloud_runner

        self._dir = Path(tempfile.mkdtemp(prefix="splitsdk-serve-"))
        for name, data in files.items():
            if Path(name).name != name or name in (".", ".."):
                raise ValueError(f"bundle file name {name!r} is not a plain file name")
            (self._dir / name).write_bytes(data)
        bundle = load_bundle(self._dir)
        self._run = load_cloud_runner(bundle if split is None else bundle.member(split))
        self.__call__.set_max_batch_size(max_batch)  # type: ignore[attr-defined]
        self.__call__.set_batch_wait_timeout_s(batch_wait_s)  # type: ignore[attr-defined]

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.005)
    async def __call__(self, requests: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
        sizes = [int(r[0].shape[0]) for r in requests]
        joined = [np.concatenate([r[i] for r in requests]) for i in range(len(requests[0]))]
        outputs = await asyncio.to_thread(self._run, joined)
        cuts = np.cumsum(sizes)[:-1]
        per_output = [np.split(o, cuts) for o in outputs]
        return [[parts[k] for parts in per_output] for k in range(len(requests))]


def _options(engine: EngineConfig) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "ray_actor_options": {"num_cpus": engine.num_cpus},
        "max_ongoing_requests": max(2, engine.max_batch),
    }
    if engine.max_replicas > engine.replicas:
        opts["autoscaling_config"] = {
            "min_replicas": engine.replicas,
            "initial_replicas": engine.replicas,
            "max_replicas": engine.max_replicas,
            "target_ongoing_requests": engine.target_ongoing_requests,
        }
    else:
        opts["num_replicas"] = engine.replicas
    return opts


def running(name: str) -> bool:
    """Whether the Serve application `name` is up (RUNNING) on the connected cluster."""
    try:
        status = serve.status().applications.get(name)
    except Exception:  # Serve not started on this cluster yet
        return False
    return status is not None and str(status.status).endswith("RUNNING")


def deploy(bundle: Bundle, engine: EngineConfig, force: bool = True, split: int | None = None) -> str:
    """Deploy `bundle`'s cloud model (member `split`'s of a multi-split bundle: see `cloud_halves`) as its own
    Serve application; returns its name. Without `force`, an application of that name already running is left
    alone (a second receiver joins it)."""
    if (split is None) != (not bundle.manifest.splits):
        raise ReceiverError(f"{bundle.root}: a multi-split bundle's cloud halves are deployed one split at a time"
                            if split is None else f"{bundle.root}: a single-split bundle has no split {split}")
    connect(engine.ray_address)
    name = app_name(bundle, engine, split)
    if not force and running(name):
        return name
    model: Any = CloudModel  # a serve.Deployment (the decorator's type is not visible to mypy)
    app = model.options(**_options(engine)).bind(
        bundle_files(bundle), engine.max_batch, engine.batch_wait_ms / 1000.0, split
    )
    try:
        serve.start(proxy_location="Disabled")  # handles only: no HTTP proxy (an existing one is kept)
        serve.run(app, name=name, route_prefix=None, blocking=False)
    except Exception as exc:  # RayServeException, a replica that failed to load the model
        raise ReceiverError(f"engine: deploying {name} on Ray Serve failed: {first_line(exc)}") from None
    return name


def undeploy(name: str, address: str) -> None:
    """Delete the Serve application `name`."""
    connect(address)
    serve.delete(name)


class RayRunner:
    """The receiver's cloud model (member `split`'s of a multi-split bundle) on Ray Serve: `runner(batch)` sends
    one batch and waits for its outputs."""

    def __init__(self, bundle: Bundle, engine: EngineConfig, split: int | None = None) -> None:
        self.engine = engine
        self.name = deploy(bundle, engine, force=False, split=split)
        self._handle = serve.get_app_handle(self.name)
        self.log = logging.getLogger("splitsdk.cloud")

    def __call__(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        last: Exception = ReceiverError("no attempt made")
        for attempt in range(self.engine.retries + 1):
            if attempt:
                time.sleep(RETRY_PAUSE_S * attempt)  # a killed replica is replaced within seconds
            try:
                out = self._handle.remote([np.ascontiguousarray(x) for x in inputs]).result(
                    timeout_s=self.engine.timeout_s
                )
                return [np.asarray(o) for o in out]
            except Exception as exc:  # RayActorError, TimeoutError, a replica's own failure: try again
                last = exc
                self.log.warning("ray serve %s: attempt %d failed: %s", self.name, attempt + 1, first_line(exc))
        raise ReceiverError(f"Ray Serve application {self.name}: {first_line(last)}")
