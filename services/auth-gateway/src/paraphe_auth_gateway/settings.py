import json
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    HttpUrl,
    Json,
    SecretStr,
    model_validator,
)
from pydantic_settings import NoDecode

from paraphe_auth_gateway.oidc import DEFAULT_KEYS_MAX_AGE_SECONDS
from paraphe_common.settings import RedisSettings, ServiceSettings
from paraphe_common.tokens import (
    STAFF_ROLES,
    SignerTokenSettings,
    TokenSigningSettings,
    TokenVerificationSettings,
)


def allowlist_key(key: str) -> str:
    """A staff allowlist key as it is looked up: an email (it holds an @) in lower case, as the
    provider's may come in any case; a subject as the provider spells it (a sub is
    case-sensitive). Surrounding spaces, which no email nor sub has, are dropped."""
    key = key.strip()
    return key.lower() if "@" in key else key


class _Entries(list[tuple[str, Any]]):
    """A JSON object's entries in order, duplicates included (a dict would keep the last)."""


def _read_allowlist(value: Any) -> Any:
    """The allowlist with its keys as looked up; two keys that are then one are refused, named
    by position only (an agent's email is not for the logs)."""
    if isinstance(value, str):
        value = json.loads(value, object_pairs_hook=_Entries)
    if isinstance(value, dict):
        value = _Entries(value.items())
    if not isinstance(value, _Entries):
        return value  # not an object: the field's type says so
    allowlist: dict[str, Any] = {}
    positions: dict[str, int] = {}
    for position, (key, roles) in enumerate(value, start=1):
        normalised = allowlist_key(key)
        if normalised in positions:
            raise ValueError(
                f"keys {positions[normalised]} and {position} are the same once emails are "
                "lower-cased and spaces trimmed: give the person's roles under one key"
            )
        positions[normalised] = position
        allowlist[normalised] = roles
    return allowlist


def _known_roles(allowlist: dict[str, list[str]]) -> dict[str, list[str]]:
    unknown = {role for roles in allowlist.values() for role in roles} - STAFF_ROLES
    if unknown:
        raise ValueError(f"unknown staff roles {sorted(unknown)}; known: {sorted(STAFF_ROLES)}")
    return allowlist


def _versioned_peppers(peppers: dict[str, SecretStr]) -> dict[str, SecretStr]:
    if not peppers:
        raise ValueError("at least one pepper version is required")
    for version, pepper in peppers.items():
        if len(pepper.get_secret_value()) < 32:
            raise ValueError(f"pepper {version} is shorter than 32 characters")
    return peppers


class AuthGatewaySettings(
    ServiceSettings,
    RedisSettings,
    TokenSigningSettings,
    TokenVerificationSettings,
    SignerTokenSettings,
):
    """Read once from the PARAPHE_* environment at start."""

    # Where browsers reach us: redirect URIs and cookie security derive from it.
    public_url: HttpUrl

    # FranceConnect (citizens: signers and authors).
    franceconnect_issuer: HttpUrl
    franceconnect_client_id: str = Field(min_length=1)
    franceconnect_client_secret: SecretStr
    franceconnect_acr_values: str = "eidas1"

    # The identity provider of public agents (staff).
    staff_issuer: HttpUrl
    staff_client_id: str = Field(min_length=1)
    staff_client_secret: SecretStr
    # {"marie.moderatrice@assemblee.fr": ["moderator"], "<sub>": ["admin"], ...}: keys as
    # allowlist_key makes them.
    staff_roles: Annotated[
        dict[str, list[str]],
        NoDecode,
        BeforeValidator(_read_allowlist),
        AfterValidator(_known_roles),
    ]

    # Versioned secrets from which signer keys and author ids are derived; only this service
    # holds them. {"1": "...", "2": "..."}; new keys use signer_pepper_version.
    signer_peppers: Annotated[Json[dict[str, SecretStr]], AfterValidator(_versioned_peppers)]
    signer_pepper_version: str = "1"
    # Author ids derive from this version and never change (the catalogue keys authors by
    # them): its pepper stays when signing moves to a newer one (paraphe_common.peppers).
    author_pepper_version: str = "1"

    @model_validator(mode="after")
    def _versions_have_peppers(self) -> Self:
        named = {self.signer_pepper_version, self.author_pepper_version}
        named |= set(self.signer_pepper_schedule)
        missing = sorted(named - set(self.signer_peppers))
        if missing:
            raise ValueError(f"pepper versions {missing} are used but not in signer_peppers")
        if self.signer_pepper_schedule and self.signer_pepper_version not in (
            self.signer_pepper_schedule
        ):
            raise ValueError("signer_pepper_version must be in signer_pepper_schedule")
        if not self.signer_pepper_schedule and len(self.signer_peppers) > 1:
            # A second pepper means a rotation: signing under it without a schedule would give
            # everyone new keys on the petitions open today, each signable again.
            raise ValueError(
                "several signer_peppers need signer_pepper_schedule, on auth-gateway and "
                "intake alike (docs/security.md, rotating the signer pepper)"
            )
        return self

    # Where the catalogue takes authors' identities (an internal URL, not through the proxy).
    catalog_url: HttpUrl

    signer_token_lifetime: int = Field(default=30 * 60, ge=60)
    author_token_lifetime: int = Field(default=4 * 3600, ge=60)
    staff_token_lifetime: int = Field(default=8 * 3600, ge=60)
    sign_in_timeout: int = Field(default=10 * 60, ge=60)  # state and nonce live this long
    provider_timeout: float = Field(default=10.0, gt=0)
    # Seconds the providers' signing keys (JWKS) are used before they are fetched again: a key
    # a provider withdraws (after a leak) is refused at the latest this long after. A fetch
    # that fails then refuses sign-ins (503) rather than trust the old keys any longer.
    provider_keys_max_age: int = Field(default=DEFAULT_KEYS_MAX_AGE_SECONDS, ge=1)
