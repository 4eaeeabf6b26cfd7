"""`splitsdk certs`: a private CA, a server certificate and one client certificate per camera.

The receiver requires client certificates signed by this CA; a camera's certificate common name is
its device id (the receiver checks HELLO's device id against it). Keys are EC P-256.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from splitsdk.errors import ReceiverError


@dataclass(frozen=True)
class IssuedFiles:
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    cameras: dict[str, tuple[Path, Path]]


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
        try:
            ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
            ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), None)
        except ValueError as exc:
            raise ReceiverError(f"{ca_cert_path}: cannot reuse the existing CA: {exc}") from None
        if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
            raise ReceiverError(f"{ca_key_path}: expected an EC private key")
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
    return IssuedFiles(ca_cert_path, ca_key_path, server_cert, server_key, issued)
