"""Save a Keras model so that the same model always gives the same bytes."""

from __future__ import annotations

import json
import tempfile
import zipfile
from pathlib import Path
from typing import Any

FIXED_DATE = (1980, 1, 1, 0, 0, 0)


def save_keras_deterministic(model: Any, path: Path) -> None:
    """`model.save` then rewrite the archive: sorted members, fixed dates, no `date_saved`."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "model.keras"
        model.save(raw)
        with zipfile.ZipFile(raw) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
            for name in sorted(src.namelist()):
                data = src.read(name)
                if name == "metadata.json":
                    meta = json.loads(data)
                    meta.pop("date_saved", None)
                    data = json.dumps(meta, sort_keys=True).encode()
                info = zipfile.ZipInfo(name, date_time=FIXED_DATE)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                dst.writestr(info, data)
