"""Which cameras the receiver trusts: its TLS server context and the device allow-list, kept current.

A camera is served when its client certificate is signed by `tls.client_ca`, is not listed in the
CA's revocation list `tls.crl` (checked by OpenSSL at the handshake, `VERIFY_CRL_CHECK_LEAF`), and,
with `tls.allowed_devices`, its device id (the certificate's common name) is in that file. The files
are re-read when one of them changes (checked as each connection arrives) or on `Trust.reload`
(SIGHUP): a new SSLContext is built and every later connection is wrapped by it, while connections
already open keep theirs. A file that does not load keeps the previous trust and logs why.
"""

from __future__ import annotations

import datetime
import logging
import os
import ssl
from pathlib import Path

from splitsdk.cloud.config import TlsConfig
from splitsdk.cloud.logs import event
from splitsdk.errors import ReceiverError


def build_context(tls: TlsConfig) -> ssl.SSLContext:
    """Server TLS context requiring a client certificate signed by the client CA and not revoked."""
    assert tls.cert is not None and tls.key is not None and tls.client_ca is not None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(tls.cert), str(tls.key))
        ctx.load_verify_locations(cafile=str(tls.client_ca))
    except (OSError, ssl.SSLError) as exc:
        raise ReceiverError(f"cannot load TLS files ({tls.cert}, {tls.client_ca}): {exc}") from None
    if tls.crl is not None:
        check_crl(tls.crl, tls.client_ca)
        try:
            ctx.load_verify_locations(cafile=str(tls.crl))
        except (OSError, ssl.SSLError) as exc:
            raise ReceiverError(f"{tls.crl}: cannot load the CRL: {exc}") from None
        ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def check_crl(crl_path: Path, ca_path: Path) -> int:
    """Refuse a CRL that would make OpenSSL fail every handshake (not the CA's, expired); returns how
    many certificates it revokes."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    try:
        crl = x509.load_pem_x509_crl(crl_path.read_bytes())
        ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ReceiverError(f"{crl_path}: cannot read the CRL: {exc}") from None
    key = ca.public_key()
    if crl.issuer != ca.subject:
        raise ReceiverError(f"{crl_path}: the CRL is not issued by the client CA ({ca_path})")
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        raise ReceiverError(f"{ca_path}: the client CA's key type cannot sign a CRL")
    if not crl.is_signature_valid(key):
        raise ReceiverError(f"{crl_path}: the CRL's signature is not the client CA's ({ca_path})")
    next_update = crl.next_update_utc
    if next_update is not None and next_update < datetime.datetime.now(datetime.UTC):
        raise ReceiverError(
            f"{crl_path}: the CRL expired on {next_update:%Y-%m-%d} (re-sign it: splitsdk certs revoke)"
        )
    return len(crl)


def read_allowed(path: Path) -> frozenset[str]:
    """The device ids of an allow-list file: one a line; blank lines and `#` comments are skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ReceiverError(f"{path}: cannot read the device allow-list: {exc}") from None
    return frozenset(s for s in (line.split("#", 1)[0].strip() for line in text.splitlines()) if s)


class _LiveContext(ssl.SSLContext):
    """The context given to the asyncio server: it wraps each new connection with the newest context."""

    trust: Trust

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        self.trust.refresh()
        return self.trust.context.wrap_bio(incoming, outgoing, server_side, server_hostname, session)


Stamp = tuple[tuple[int, int, int] | None, ...]


class Trust:
    """The current TLS context and allow-list of one receiver (`server_context` goes to the server)."""

    def __init__(self, tls: TlsConfig, log: logging.Logger) -> None:
        self.tls, self.log = tls, log
        self._stamp = self._stamps()
        self.context, self.allowed = self._load()
        self.server_context = _LiveContext(ssl.PROTOCOL_TLS_SERVER)
        self.server_context.trust = self

    def _load(self) -> tuple[ssl.SSLContext, frozenset[str] | None]:
        ctx = build_context(self.tls)
        allowed = read_allowed(self.tls.allowed_devices) if self.tls.allowed_devices is not None else None
        return ctx, allowed

    def _stamps(self) -> Stamp:
        def stamp(path: Path) -> tuple[int, int, int] | None:
            try:
                st = os.stat(path)
            except OSError:
                return None
            return (st.st_mtime_ns, st.st_size, st.st_ino)

        return tuple(stamp(p) for p in self.tls.trust_files)

    def refresh(self) -> None:
        """Re-read the files if one has changed since they were last read."""
        if self._stamps() != self._stamp:
            self.reload("file changed")

    def reload(self, reason: str = "SIGHUP") -> bool:
        """Build a new context and allow-list for later connections; on a bad file keep the old ones."""
        self._stamp = self._stamps()  # a bad file is reported once, not at every connection
        try:
            self.context, self.allowed = self._load()
        except ReceiverError as exc:
            event(self.log, "trust_reload_failed", logging.ERROR, reason=reason, error=str(exc))
            return False
        event(
            self.log,
            "trust_reloaded",
            reason=reason,
            crl=str(self.tls.crl),
            allowed_devices=len(self.allowed) if self.allowed is not None else None,
        )
        return True

    def refusal(self, device_id: str) -> str | None:
        """Why `device_id` may not be served (one line), or None when it may."""
        if self.allowed is not None and device_id not in self.allowed:
            return f"device {device_id!r} is not provisioned on this receiver (not in {self.tls.allowed_devices})"
        return None
