"""The agent's key and self-signed certificate (made by `jaz agent init`), with the
`cryptography` library: an EC P-256 key, a certificate valid for ten years. The server
trusts it by its fingerprint, not by a CA (`jaz hosts trust`)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
from pathlib import Path

from jaz.hosts.wire import fingerprint


def make_certificate(cert: Path, key: Path) -> str:
    """Write a new key (0600) and certificate; the certificate's fingerprint."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    name = socket.gethostname() or "jaz-agent"
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"jaz agent {name}"[:64])])
    now = dt.datetime.now(dt.UTC)
    alt: list[x509.GeneralName] = [x509.DNSName(name), x509.DNSName("localhost"),
                                   x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    certificate = (x509.CertificateBuilder()
                   .subject_name(subject).issuer_name(subject)
                   .public_key(private.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5))
                   .not_valid_after(now + dt.timedelta(days=3650))
                   .add_extension(x509.SubjectAlternativeName(alt), critical=False)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                                  critical=True)
                   .sign(private, hashes.SHA256()))
    key.parent.mkdir(parents=True, exist_ok=True)
    cert.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return fingerprint(certificate.public_bytes(serialization.Encoding.DER))


def certificate_fingerprint(cert: Path) -> str:
    """The fingerprint of a PEM certificate file (stdlib only: `jaz agent fingerprint`)."""
    import ssl

    return fingerprint(ssl.PEM_cert_to_DER_cert(cert.read_text(encoding="ascii")))
