"""Post-processing hooks: the cloud model's outputs for one frame -> the RESULT bytes.

The bundle manifest chooses one by name (`"postprocess": {"kind": "topk", "k": 5}`); `kind` is
either a built-in name or `package.module:function`, a user hook with the same signature.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from typing import Any

import numpy as np

from splitsdk.errors import BundleError

Hook = Callable[[list[np.ndarray], dict[str, Any]], bytes]


def topk(outputs: list[np.ndarray], params: dict[str, Any]) -> bytes:
    """JSON {"topk": [[class, score], ...]} of the first output, best first, ties by class index."""
    scores = np.asarray(outputs[0], dtype=np.float64).reshape(-1)
    k = max(1, min(int(params.get("k", 5)), scores.size))
    order = np.lexsort((np.arange(scores.size), -scores))[:k]
    return json.dumps({"topk": [[int(i), round(float(scores[i]), 6)] for i in order]}).encode()


def argmax(outputs: list[np.ndarray], params: dict[str, Any]) -> bytes:
    """JSON {"class": i, "score": s} of the first output."""
    scores = np.asarray(outputs[0]).reshape(-1)
    i = int(np.argmax(scores))
    return json.dumps({"class": i, "score": round(float(scores[i]), 6)}).encode()


def raw(outputs: list[np.ndarray], params: dict[str, Any]) -> bytes:
    """JSON of every output as nested lists (small models and debugging only)."""
    return json.dumps({"outputs": [np.asarray(o).tolist() for o in outputs]}).encode()


BUILTIN: dict[str, Hook] = {"topk": topk, "argmax": argmax, "raw": raw}
BUILTIN["lpr_ctc"] = lambda o, p: importlib.import_module("splitsdk.examples.lpr.decode").postprocess(o, p)


def resolve(spec: dict[str, Any]) -> Callable[[list[np.ndarray]], bytes]:
    """The hook the manifest names, bound to its parameters."""
    kind = str(spec.get("kind", "topk"))
    if kind in BUILTIN:
        hook = BUILTIN[kind]
    elif ":" in kind:
        module, _, name = kind.partition(":")
        try:
            hook = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as exc:
            raise BundleError(f"manifest.json: postprocess kind '{kind}' cannot be imported: {exc}") from None
    else:
        raise BundleError(f"manifest.json: unknown postprocess kind '{kind}' (built-in: {sorted(BUILTIN)})")
    params = {k: v for k, v in spec.items() if k != "kind"}
    return lambda outputs: hook(outputs, params)
