"""Network addresses as users write them: `HOST:PORT`, an IPv6 host in brackets (`[::1]:7700`).

One parser for every place an address is read (receiver config and flags, `edge-sim --server`, the
edge app's compiled-in server); each caller names what it parsed, so the error names the field.
"""

from __future__ import annotations

from splitsdk.errors import SplitSdkError


class AddressError(SplitSdkError, ValueError):
    """A `HOST:PORT` that cannot be parsed (a ValueError too, so argparse `type=` can use the parser)."""


def parse_hostport(text: str, what: str, default_host: str | None = None) -> tuple[str, int]:
    """`HOST:PORT` -> (host, port); `[v6]:PORT` -> (v6, port). Port 0..65535.

    An empty host (`:7700`) is `default_host` when given (a listening address: "0.0.0.0"), an error
    otherwise. Errors are one line naming `what`, e.g. "listen: expected HOST:PORT, got 'x'".
    """
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise AddressError(f"{what}: expected HOST:PORT, got {text!r}")
    if host.startswith("["):
        if not host.endswith("]") or len(host) < 3:
            raise AddressError(f"{what}: expected [IPv6]:PORT, got {text!r}")
        host = host[1:-1]
    elif ":" in host:
        raise AddressError(f"{what}: an IPv6 host needs brackets, [HOST]:PORT, got {text!r}")
    if not host:
        if default_host is None:
            raise AddressError(f"{what}: expected HOST:PORT, got {text!r} (no host)")
        host = default_host
    return host, int(port)
