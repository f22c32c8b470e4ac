"""Local certificates for the data layer's TLS (NATS locally; PostgreSQL in a test): a private
certificate authority and a server certificate it signs, made on this machine and never
committed. Production's come from cert-manager (deploy/k8s/components/nats-tls) and from
CloudNativePG.

The server certificate names ``localhost`` and ``127.0.0.1``: the local servers listen there,
clients verify the name they connect to, and a cluster's servers present the same certificate
to one another on their routes (server and client use, as route TLS is mutual).
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=365)
# Certificates with less than this left are made again.
RENEW_BEFORE = datetime.timedelta(days=30)
LOCAL_NAMES = ("localhost",)
LOCAL_ADDRESSES = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class TlsFiles:
    """Where a server's TLS material is: the authority's certificate (what clients trust), the
    server's certificate and its private key (readable by its owner only)."""

    ca: Path
    cert: Path
    key: Path

    def client_context(self) -> ssl.SSLContext:
        """What a client verifies servers with: this authority, and the server's name."""
        return ssl.create_default_context(cafile=str(self.ca))


def local_certificates(directory: Path) -> TlsFiles:
    """The certificates in ``directory``, made there first when missing or close to expiry."""
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    if not _still_valid(files):
        LocalAuthority().issue(files)
    return files


def _still_valid(files: TlsFiles) -> bool:
    try:
        certificates = [
            x509.load_pem_x509_certificate(path.read_bytes()) for path in (files.ca, files.cert)
        ]
    except (OSError, ValueError):
        return False
    horizon = datetime.datetime.now(datetime.UTC) + RENEW_BEFORE
    return files.key.exists() and all(c.not_valid_after_utc > horizon for c in certificates)


class LocalAuthority:
    """A private certificate authority whose key stays in memory: it signs a server's
    certificate and, later, its renewals (a new key, the same authority), as cert-manager's CA
    Issuer does."""

    def __init__(self) -> None:
        now = datetime.datetime.now(datetime.UTC)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "paraphe local authority")])
        self.certificate = (
            _builder(self.name, self.name, self.key.public_key(), now)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(signs_certificates=True), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )

    def issue(self, files: TlsFiles) -> TlsFiles:
        """A server certificate with a new key, written with the authority's own at ``files``."""
        now = datetime.datetime.now(datetime.UTC)
        server_key = ec.generate_private_key(ec.SECP256R1())
        server_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
        alternative_names: list[x509.GeneralName] = [x509.DNSName(name) for name in LOCAL_NAMES]
        alternative_names += [x509.IPAddress(ipaddress.ip_address(a)) for a in LOCAL_ADDRESSES]
        server = (
            _builder(server_name, self.name, server_key.public_key(), now)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(signs_certificates=False), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        files.ca.parent.mkdir(parents=True, exist_ok=True)
        files.key.unlink(missing_ok=True)
        files.key.touch(mode=0o600)
        files.key.write_bytes(
            server_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        files.cert.write_bytes(server.public_bytes(serialization.Encoding.PEM))
        files.ca.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))
        return files


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePublicKey, now: datetime.datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
    )


def _key_usage(*, signs_certificates: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signs_certificates,
        crl_sign=signs_certificates,
        encipher_only=False,
        decipher_only=False,
    )
