"""Platform tokens: genuine ones pass, every forgery and misuse is refused."""

import base64
import gc
import hashlib
import hmac
import json
import time
from collections.abc import Callable

import pytest
from jose import jwt

from paraphe_common.tokens import (
    ISSUER,
    MODERATOR,
    SIGNER,
    STAFF,
    InvalidToken,
    MissingRole,
    TokenIssuer,
    TokenVerifier,
    VerificationKey,
    hmac_payload,
    jose_payload,
    public_keys,
    signer_secret_keys,
)
from paraphe_devstack.keys import SignerKey, SigningKey, new_signer_key, new_signing_key

KEY = new_signing_key("current")
OTHER_KEY = new_signing_key("current")  # same kid, different key: a forger's


def verifier(
    *keys: SigningKey, cache_size: int = 100, clock: Callable[[], float] = time.time
) -> TokenVerifier:
    merged = {"keys": [k for key in keys for k in json.loads(key.public_jwks)["keys"]]}
    return TokenVerifier(public_keys(json.dumps(merged)), cache_size=cache_size, clock=clock)


def b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    return {"iss": ISSUER, "aud": SIGNER, "sub": "k" * 64, "iat": now, "exp": now + 600} | overrides


def signed(payload: dict[str, object], key: SigningKey = KEY, kid: str = "current") -> str:
    return str(jwt.encode(payload, key.private_pem, algorithm="ES256", headers={"kid": kid}))


def test_a_token_issued_by_the_gateway_is_accepted() -> None:
    token = TokenIssuer(KEY.private_pem, KEY.kid).issue(SIGNER, "k" * 64, 600, pv="1")
    result = verifier(KEY).verify(token, SIGNER)
    assert result.subject == "k" * 64
    assert result.audience == SIGNER
    assert result.extra == {"pv": "1"}


def test_keys_can_be_rotated_by_publishing_both() -> None:
    old, new = new_signing_key("old"), new_signing_key("new")
    both = verifier(old, new)
    for key in (old, new):
        assert both.verify(TokenIssuer(key.private_pem, key.kid).issue(SIGNER, "s", 60), SIGNER)


@pytest.mark.parametrize(
    ("why", "token"),
    [
        ("expired", signed(claims(exp=int(time.time()) - 3600, iat=int(time.time()) - 7200))),
        ("another issuer", signed(claims(iss="someone-else"))),
        ("no expiry", signed({k: v for k, v in claims().items() if k != "exp"})),
        ("no issue time", signed({k: v for k, v in claims().items() if k != "iat"})),
        ("expiry not a number", signed(claims(exp="tomorrow"))),
        ("no subject", signed({k: v for k, v in claims().items() if k != "sub"})),
        ("several audiences", signed(claims(aud=[SIGNER, STAFF]))),
        ("signed by another key under a known kid", signed(claims(), key=OTHER_KEY)),
        ("unknown kid", signed(claims(), kid="elsewhere")),
        ("alg none", b64({"alg": "none", "kid": "current"}) + "." + b64(claims()) + "."),
        (
            "HS256 keyed with the public key (algorithm confusion)",
            jwt.encode(claims(), KEY.public_jwks, algorithm="HS256", headers={"kid": "current"}),
        ),
        (
            "tampered payload",
            ".".join(
                [
                    signed(claims()).split(".")[0],
                    b64(claims(sub="x" * 64)),
                    signed(claims()).split(".")[2],
                ]
            ),
        ),
        ("garbage", "not-a-jwt"),
        (
            # 6 kB, as a cookie carries it: nested past the JSON parser's depth.
            "a header nested too deep",
            base64.urlsafe_b64encode(b"[" * 5_000).rstrip(b"=").decode()
            + "."
            + b64(claims())
            + ".sig",
        ),
    ],
)
def test_forged_or_unusable_tokens_are_refused(why: str, token: str) -> None:
    with pytest.raises(InvalidToken):
        verifier(KEY).verify(token, SIGNER)


def test_a_token_for_one_audience_is_refused_for_another_even_from_the_cache() -> None:
    check = verifier(KEY)
    token = signed(claims(aud=SIGNER))
    check.verify(token, SIGNER)
    with pytest.raises(InvalidToken):
        check.verify(token, STAFF)


def test_roles_come_from_the_token_and_a_missing_one_is_refused() -> None:
    issuer = TokenIssuer(KEY.private_pem, KEY.kid)
    check = verifier(KEY)
    moderator = issuer.issue(STAFF, "agent", 600, roles=frozenset({MODERATOR}))
    assert check.verify(moderator, STAFF, role=MODERATOR).roles == {MODERATOR}
    nobody = issuer.issue(STAFF, "agent", 600)
    with pytest.raises(MissingRole):
        check.verify(nobody, STAFF, role=MODERATOR)


def test_a_cached_token_is_refused_once_it_expires() -> None:
    now = [time.time()]
    check = verifier(KEY, clock=lambda: now[0])
    token = signed(claims(exp=int(now[0]) + 60))
    assert check.verify(token, SIGNER)
    assert token in check._cache
    now[0] += 60 + 31  # past the expiry and its 30 s leeway
    with pytest.raises(InvalidToken, match="expired"):
        check.verify(token, SIGNER)


def test_a_token_issued_in_the_future_is_refused() -> None:
    with pytest.raises(InvalidToken, match="future"):
        verifier(KEY).verify(signed(claims(iat=int(time.time()) + 3600)), SIGNER)


def test_expiry_leeway_is_thirty_seconds() -> None:
    now = time.time()
    token = signed(claims(exp=int(now) - 10))
    assert verifier(KEY, clock=lambda: now).verify(token, SIGNER)


def test_the_cache_is_bounded() -> None:
    check = verifier(KEY, cache_size=2)
    for n in range(5):
        check.verify(signed(claims(sub=f"{n}" * 64)), SIGNER)
    assert len(check._cache) == 2


@pytest.mark.parametrize(
    "extra", [{"pv": "1"}, {"keys": {"1": "a" * 64, "2": "b" * 64}, "n": None}, {}]
)
def test_the_cache_answers_the_same_claims_and_holds_nothing_the_collector_walks(
    extra: dict[str, object],
) -> None:
    check = verifier(KEY)
    token = signed(claims(roles=["moderator"], **extra))
    first = check.verify(token, SIGNER)
    again = check.verify(token, SIGNER)  # from the cache
    assert again == first
    assert again.extra == extra
    assert again.roles == {"moderator"}
    # A cache full of tracked objects made every full collection walk them (tens of ms at
    # 100,000 tokens, answers stalled meanwhile): its entries are plain values, which the
    # collector stops tracking, one level of nesting per pass (pairs, extra, the entry).
    for _ in range(3):
        gc.collect()
    assert not gc.is_tracked(check._cache[token])


@pytest.mark.parametrize(
    "jwks",
    [
        "not json",
        '{"keys": []}',
        '{"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "x"}]}',
    ],
)
def test_verification_keys_must_be_public_ec_keys(jwks: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the messages are for people
        public_keys(jwks)


def test_a_private_key_is_refused_as_a_verification_key() -> None:
    from jose import jwk

    private = jwk.construct(KEY.private_pem, "ES256").to_dict()
    private["kid"] = "leaked"
    with pytest.raises(ValueError, match="public"):
        public_keys(json.dumps({"keys": [private]}))


def signer_verifier(signer: SignerKey) -> TokenVerifier:
    return TokenVerifier(public_keys(KEY.public_jwks) | signer_secret_keys(signer.secret_jwks))


def test_signer_tokens_are_macs_under_the_signer_secret() -> None:
    signer = new_signer_key("signer-1")
    token = signer.issuer().issue(SIGNER, "k" * 64, 600, pv="1")
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    assert signer_verifier(signer).verify(token, SIGNER).subject == "k" * 64


def test_a_signer_secret_cannot_vouch_for_any_other_audience() -> None:
    signer = new_signer_key("signer-1")
    staff = signer.issuer().issue(STAFF, "intruder", 600, roles=frozenset({MODERATOR}))
    with pytest.raises(InvalidToken, match="audience"):
        signer_verifier(signer).verify(staff, STAFF, role=MODERATOR)


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(
            lambda signer: new_signer_key(signer.kid).issuer().issue(SIGNER, "s", 60),
            id="another secret under the signer kid",
        ),
        pytest.param(
            lambda signer: jwt.encode(
                claims(), json.loads(signer.secret_jwks)["keys"][0]["k"], algorithm="HS256",
                headers={"kid": KEY.kid},
            ),
            id="HS256 under the kid of the EC key",
        ),
        pytest.param(
            lambda signer: signed(claims(), kid=signer.kid), id="ES256 under the signer kid"
        ),
    ],
)  # fmt: skip
def test_algorithms_are_bound_to_their_keys(forge: Callable[[SignerKey], str]) -> None:
    signer = new_signer_key("signer-1")
    with pytest.raises(InvalidToken):
        signer_verifier(signer).verify(forge(signer), SIGNER)


def test_signer_secrets_must_be_long_secrets() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        signer_secret_keys('{"keys": [{"kty": "oct", "kid": "x", "k": "c2hvcnQ"}]}')


# The standard-library HS256 check must agree with python-jose's, token for token, except
# where it is known to be the stricter (STRICTER_THAN_JOSE).
_SIGNER = new_signer_key("signer-1")
_SIGNER_KEY = signer_secret_keys(_SIGNER.secret_jwks)["signer-1"]


def _mac(payload: object, *, header: object = None, secret: bytes | None = None) -> str:
    """A token MACed over arbitrary header and payload JSON (valid or not as JWT claims)."""
    header = {"alg": "HS256", "typ": "JWT", "kid": "signer-1"} if header is None else header
    signing_input = f"{b64(header)}.{b64(payload)}"  # type: ignore[arg-type]
    mac = hmac.new(secret or _SIGNER_KEY.secret or b"", signing_input.encode(), hashlib.sha256)
    return f"{signing_input}.{base64.urlsafe_b64encode(mac.digest()).rstrip(b'=').decode()}"


def _variants() -> list[tuple[str, str]]:
    good = _SIGNER.issuer().issue(SIGNER, "k" * 64, 600, pv="1")
    head, body, mac = good.split(".")
    flipped = mac[:-2] + ("A" if mac[-2] != "A" else "B") + mac[-1]
    return [
        ("issued by the gateway", good),
        ("issued with roles", _SIGNER.issuer().issue(SIGNER, "s", 60, roles=frozenset({"x"}))),
        ("minimal claims", _mac({"iss": ISSUER, "sub": "s"})),
        ("float iat", _mac(claims(iat=12.5))),
        ("string iat", _mac(claims(iat="12"))),
        ("non-numeric iat", _mac(claims(iat="soon"))),
        ("no issuer", _mac({"sub": "s", "iat": 1})),
        ("another issuer", _mac(claims(iss="elsewhere"))),
        ("no subject", _mac({"iss": ISSUER, "iat": 1})),
        ("numeric subject", _mac(claims(sub=42))),
        ("numeric jti", _mac(claims(jti=7))),
        ("string jti", _mac(claims(jti="j"))),
        ("at_hash without access token", _mac(claims(at_hash="abc"))),
        ("payload is a list", _mac(["iss", ISSUER])),
        ("payload is a string", _mac("paraphe")),
        ("another secret", _mac(claims(), secret=b"x" * 32)),
        ("signature flipped", f"{head}.{body}.{flipped}"),
        ("signature truncated", f"{head}.{body}.{mac[:-4]}"),
        ("signature empty", f"{head}.{body}."),
        ("signature not base64", f"{head}.{body}.{mac[:10]}!{mac[11:]}"),
        ("signature with a non-ASCII character", f"{head}.{body}.{mac[:10]}é{mac[10:]}"),
        ("signature with two stray characters", f"{head}.{body}.{mac[:10]}!!{mac[10:]}"),
        ("payload not base64", f"{head}.%%%.{mac}"),
        ("payload not JSON", _mac_raw(head, "bm90IGpzb24")),
        ("payload not UTF-8", _mac_raw(head, "__79")),
        ("claims swapped for another token's", f"{head}.{b64(claims(sub='other'))}.{mac}"),
    ]


def _mac_raw(header_segment: str, payload_segment: str) -> str:
    signing_input = f"{header_segment}.{payload_segment}"
    mac = hmac.new(_SIGNER_KEY.secret or b"", signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def _outcome(check: Callable[[str, VerificationKey], dict[str, object]], token: str) -> object:
    try:
        return check(token, _SIGNER_KEY)
    except InvalidToken:
        return "refused"


# python-jose drops whatever is not base64url from a signature before decoding it (Python's
# lenient base64), so the genuine signature with characters added still passes, as long as
# the length still decodes; the standard library's strict decoding refuses such a token.
STRICTER_THAN_JOSE = {"signature with a non-ASCII character", "signature with two stray characters"}


@pytest.mark.parametrize(("case", "token"), _variants(), ids=[case for case, _ in _variants()])
def test_the_standard_library_hs256_check_agrees_with_python_jose(case: str, token: str) -> None:
    ours, jose = _outcome(hmac_payload, token), _outcome(jose_payload, token)
    if case in STRICTER_THAN_JOSE:
        assert (ours, isinstance(jose, dict)) == ("refused", True)
    else:
        assert ours == jose


def test_the_agreement_covers_acceptance_and_refusal() -> None:
    outcomes = [_outcome(jose_payload, token) for _, token in _variants()]
    assert "refused" in outcomes
    assert any(isinstance(outcome, dict) for outcome in outcomes)


def test_the_verifier_takes_signer_tokens_through_the_standard_library_check() -> None:
    token = _mac(claims(sub="through-hmac"))
    assert TokenVerifier({"signer-1": _SIGNER_KEY}).verify(token, SIGNER).subject == "through-hmac"
    forged = _mac(claims(sub="forged"), secret=b"y" * 32)
    with pytest.raises(InvalidToken):
        TokenVerifier({"signer-1": _SIGNER_KEY}).verify(forged, SIGNER)
