"""One ES256 (P-256) signing key per provider, made at start and never written anywhere.

A restart makes new keys with new ``kid``s: relying parties that cache the JWK set refetch it
when they meet an unknown ``kid``, as they must with FranceConnect.
"""

from __future__ import annotations

import base64
import secrets
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from jose import JWTError, jwt
from jose.backends.cryptography_backend import CryptographyECKey

ALGORITHM = "ES256"


class InvalidSignature(Exception):
    """A token this key did not sign, or not a token at all."""


class SigningKey:
    def __init__(self) -> None:
        self.kid = secrets.token_urlsafe(12)
        private_key = ec.generate_private_key(ec.SECP256R1())
        self._private = CryptographyECKey(private_key, ALGORITHM)
        self._public = CryptographyECKey(private_key.public_key(), ALGORITHM)
        self._public_numbers = private_key.public_key().public_numbers()

    def public_jwk(self) -> dict[str, str]:
        """The public key as RFC 7518 writes an EC key: coordinates on 32 bytes, base64url."""
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": _base64url(self._public_numbers.x),
            "y": _base64url(self._public_numbers.y),
            "kid": self.kid,
            "alg": ALGORITHM,
            "use": "sig",
        }

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(
            claims, self._private, algorithm=ALGORITHM, headers={"kid": self.kid, "typ": "JWT"}
        )

    def verify(self, token: str, *, issuer: str) -> dict[str, Any]:
        """The claims of a token this key signed for ``issuer``, expired or not."""
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") != ALGORITHM or header.get("kid") != self.kid:
                raise InvalidSignature("not signed by this key")
            claims: dict[str, Any] = jwt.decode(
                token,
                self._public,
                algorithms=[ALGORITHM],
                issuer=issuer,
                options={"verify_exp": False, "verify_aud": False, "verify_at_hash": False},
            )
        except JWTError as exc:
            raise InvalidSignature(str(exc)) from None
        return claims


def _base64url(coordinate: int) -> str:
    return base64.urlsafe_b64encode(coordinate.to_bytes(32, "big")).rstrip(b"=").decode()
