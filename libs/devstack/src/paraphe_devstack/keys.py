"""Development secrets: made on this machine, never committed, never logged."""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jose import jwk

from paraphe_common.tokens import SignerTokenSettings, TokenIssuer
from paraphe_devstack.nats_access import USERS as NATS_USERS


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_pem: str
    public_jwks: str  # a JWK set holding the public half


def new_signing_key(kid: str | None = None) -> SigningKey:
    """A fresh ES256 key pair for platform tokens."""
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    kid = kid or secrets.token_hex(8)
    public = jwk.construct(
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode(),
        "ES256",
    ).to_dict()
    public.update(kid=kid, use="sig", alg="ES256")
    return SigningKey(kid, pem, json.dumps({"keys": [public]}))


def new_pepper() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class SignerKey:
    """The secret signer tokens are MACed with (auth-gateway and signature-intake only)."""

    kid: str
    secret_jwks: str  # a JWK set holding one "oct" key

    def issuer(self) -> TokenIssuer:
        return TokenIssuer.for_signers(
            SignerTokenSettings(signer_token_keys=self.secret_jwks, signer_token_key_id=self.kid)
        )


def new_signer_key(kid: str | None = None) -> SignerKey:
    kid = kid or f"signer-{secrets.token_hex(4)}"
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    entry = {"kty": "oct", "kid": kid, "alg": "HS256", "use": "sig", "k": secret}
    return SignerKey(kid, json.dumps({"keys": [entry]}))


def new_nats_password() -> str:
    """A letter, then 48 hexadecimal digits: nats-server reads a variable's value as a value of
    its configuration, where one starting with a digit is a number or a date, ``true`` a
    boolean; this is always a string."""
    return "p" + secrets.token_hex(24)


def new_redis_password() -> str:
    """The password of Redis and of its sentinels (production's Secret paraphe-redis)."""
    return secrets.token_urlsafe(33)


def new_nats_passwords() -> dict[str, str]:
    """A password for each NATS user: the services' and ``admin``."""
    return {user: new_nats_password() for user in NATS_USERS}


@dataclass(frozen=True)
class DevSecrets:
    """What a local stack needs that must not be committed, made once per state directory."""

    signing_key: SigningKey
    signer_key: SignerKey
    pepper: str
    franceconnect_client_secret: str
    staff_client_secret: str
    nats_passwords: dict[str, str]
    redis_password: str

    @classmethod
    def load_or_create(cls, path: Path) -> DevSecrets:
        if path.exists():
            stored = json.loads(path.read_text())
            if "signer_key" in stored:  # made before signer tokens had their own secret: remake
                made = cls(
                    SigningKey(**stored["signing_key"]),
                    SignerKey(**stored["signer_key"]),
                    stored["pepper"],
                    stored["franceconnect_client_secret"],
                    stored["staff_client_secret"],
                    # Made before NATS had users (or before one was added): the missing ones.
                    new_nats_passwords() | stored.get("nats_passwords", {}),
                    # Made before Redis asked for a password: one now.
                    stored.get("redis_password") or new_redis_password(),
                )
                if asdict(made) != stored:
                    made.save(path)
                return made
        made = cls(
            new_signing_key(),
            new_signer_key(),
            new_pepper(),
            new_pepper(),
            new_pepper(),
            new_nats_passwords(),
            new_redis_password(),
        )
        made.save(path)
        return made

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        path.touch(mode=0o600)
        path.write_text(json.dumps(asdict(self)))
