"""Kernel modules for the initramfs: the closure of the wanted modules, in load order.

Debian's kernel package ships no modules.dep (depmod makes it at install time), so each module's
`depends=` is read from its `.modinfo` section (NUL-separated key=value strings).
"""

from __future__ import annotations

from pathlib import Path

from splitsdk.camera.errors import CameraError


def _depends(ko: Path) -> list[str]:
    for field in ko.read_bytes().split(b"\0"):
        if field.startswith(b"depends="):
            return [d for d in field[len(b"depends=") :].decode().split(",") if d]
    return []


def load_order(moddir: Path, wanted: list[str]) -> list[Path]:
    """Module files under `moddir` for `wanted` and their dependencies, dependencies first."""
    index = {p.name.removesuffix(".ko").replace("-", "_"): p for p in (moddir / "kernel").rglob("*.ko")}
    order: list[Path] = []
    seen: set[str] = set()

    def visit(name: str, chain: tuple[str, ...]) -> None:
        key = name.replace("-", "_")
        if key in seen:
            return
        if key not in index:
            raise CameraError(
                f"kernel module {name} (needed by {' <- '.join(chain) or 'the image'}) is not in {moddir}"
            )
        seen.add(key)
        for dep in sorted(_depends(index[key])):
            visit(dep, (name, *chain))
        order.append(index[key])

    for name in wanted:
        visit(name, ())
    return order
