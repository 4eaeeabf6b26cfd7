"""`splitsdk certs`: a private CA, a server certificate and one client certificate per camera.

The receiver requires client certificates signed by this CA; a camera's certificate common name is
its device id (the receiver checks HELLO's device id against it). Keys are EC P-256.

The CA directory holds `ca.pem`/`ca.key`, `server.*`, `<camera>.*` and `crl.pem`, the CA's certificate
revocation list (empty at first): `revoke` adds a camera's certificate to it and re-signs it; a receiver
started with `--crl crl.pem` re-reads it when it changes and refuses the revoked certificates.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from splitsdk.errors import ReceiverError, first_line

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec


@dataclass(frozen=True)
class IssuedFiles:
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    cameras: dict[str, tuple[Path, Path]]
    crl: Path


CRL_FILE = "crl.pem"


def _write(path: Path, data: bytes, private: bool) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    if private:
        os.chmod(tmp, 0o600)
    tmp.replace(path)


def make_certs(out_dir: str | Path, cameras: list[str], server_names: list[str], days: int = 825) -> IssuedFiles:
    """Create (or reuse) `ca.pem`/`ca.key` in out_dir and issue `server.*` and `<camera>.*` from it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    ca_cert_path, ca_key_path = out / "ca.pem", out / "ca.key"
    if ca_cert_path.exists() and ca_key_path.exists():
        ca_cert, ca_key = _load_ca(out)
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(name("splitsdk camera CA"))
            .issuer_name(name("splitsdk camera CA"))
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        _write(ca_key_path, pem_key(ca_key), private=True)
        _write(ca_cert_path, ca_cert.public_bytes(serialization.Encoding.PEM), private=False)

    def issue(cn: str, server: bool) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
        )
        if server:
            alt: list[x509.GeneralName] = []
            for n in server_names:
                try:
                    alt.append(x509.IPAddress(ipaddress.ip_address(n)))
                except ValueError:
                    alt.append(x509.DNSName(n))
            builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        stem = "server" if server else cn
        cert_path, key_path = out / f"{stem}.pem", out / f"{stem}.key"
        _write(key_path, pem_key(key), private=True)
        _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), private=False)
        return cert_path, key_path

    for cam in cameras:
        if not cam or "/" in cam or cam.startswith(".") or cam in ("ca", "server"):
            raise ReceiverError(f"camera name {cam!r} cannot be a certificate file name")
    server_cert, server_key = issue(server_names[0] if server_names else "localhost", server=True)
    issued = {cam: issue(cam, server=False) for cam in cameras}
    crl = out / CRL_FILE
    if not crl.exists():
        _write_crl(out, ca_cert, ca_key, [])
    return IssuedFiles(ca_cert_path, ca_key_path, server_cert, server_key, issued, crl)


def _load_ca(out: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    ca_cert_path, ca_key_path = out / "ca.pem", out / "ca.key"
    try:
        ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
        ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), None)
    except (OSError, ValueError) as exc:
        raise ReceiverError(f"{ca_cert_path}: cannot use the CA: {first_line(exc)}") from None
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ReceiverError(f"{ca_key_path}: expected an EC private key")
    return ca_cert, ca_key


def _write_crl(
    out: Path, ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, revoked: list[x509.RevokedCertificate]
) -> Path:
    """Sign and write `crl.pem`: `revoked`, valid until the CA itself expires (a CRL past its next
    update would make the receiver refuse every camera)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - datetime.timedelta(minutes=5))
        .next_update(max(ca_cert.not_valid_after_utc, now + datetime.timedelta(days=1)))
        .add_extension(x509.CRLNumber(int(now.timestamp() * 1000)), critical=False)
    )
    for entry in revoked:
        builder = builder.add_revoked_certificate(entry)
    path = out / CRL_FILE
    _write(path, builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM), private=False)
    return path


def revoke(out_dir: str | Path, names: list[str]) -> tuple[Path, list[int]]:
    """Add the certificates `<name>.pem` of the CA in `out_dir` to its `crl.pem` (re-signed); returns the
    CRL's path and the serial numbers it revokes now (all of them, old and new)."""
    from cryptography import x509

    out = Path(out_dir)
    ca_cert, ca_key = _load_ca(out)
    entries: dict[int, x509.RevokedCertificate] = {}
    crl_path = out / CRL_FILE
    if crl_path.exists():
        try:
            old = x509.load_pem_x509_crl(crl_path.read_bytes())
        except ValueError as exc:
            raise ReceiverError(f"{crl_path}: cannot read the CRL: {first_line(exc)}") from None
        if old.issuer != ca_cert.subject:
            raise ReceiverError(f"{crl_path}: the CRL is not this CA's ({out / 'ca.pem'})")
        entries = {r.serial_number: r for r in old}
    now = datetime.datetime.now(datetime.UTC)
    for cn in names:
        path = out / f"{cn}.pem"
        try:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise ReceiverError(f"{path}: cannot read the certificate to revoke: {first_line(exc)}") from None
        if cert.issuer != ca_cert.subject:
            raise ReceiverError(f"{path}: not issued by the CA in {out}")
        if cert.serial_number not in entries:
            entries[cert.serial_number] = (
                x509.RevokedCertificateBuilder().serial_number(cert.serial_number).revocation_date(now).build()
            )
    return _write_crl(out, ca_cert, ca_key, list(entries.values())), sorted(entries)
