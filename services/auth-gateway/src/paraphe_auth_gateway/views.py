"""Sign-in, callback, sign-out. Every refusal is a clear French answer, never a 500."""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from redis.exceptions import RedisError

from paraphe_auth_gateway import store
from paraphe_auth_gateway.catalog import AuthorIdentity, CatalogUnavailable
from paraphe_auth_gateway.context import GATEWAY, Gateway
from paraphe_auth_gateway.flows import AUTHOR_FLOW, FLOWS, SIGN, STAFF_FLOW, Flow
from paraphe_auth_gateway.identity import InvalidBirthdate, NotAnAdult, author_id, check_adult
from paraphe_auth_gateway.oidc import ProviderUnavailable, SignInFailed
from paraphe_auth_gateway.pages import WAY_BACK
from paraphe_common.auth import COOKIES, TOKEN_VERIFIER
from paraphe_common.problems import Problem
from paraphe_common.resources import REDIS
from paraphe_common.tokens import InvalidToken

log = logging.getLogger(__name__)

# The provider's id token, kept in the person's own browser only, for FranceConnect's logout.
PROVIDER_SESSION_COOKIE = "paraphe_provider_session"
_PETITION_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")
_LOGIN_HINT = re.compile(r"^[A-Za-z0-9:._@-]{1,128}$")

_PROVIDER_ERRORS = {
    "access_denied": "Vous avez annulé la connexion : rien n'a été enregistré.",
    "login_required": "La connexion n'a pas abouti : merci de recommencer.",
    "consent_required": "Sans votre accord, la connexion ne peut pas aboutir.",
}


def local_path(value: str | None, default: str) -> str:
    """Only a path of this site: never another site (no open redirect)."""
    if not value:
        return default
    parts = urlsplit(value)
    if (
        not value.startswith("/")
        or value.startswith("//")
        or "\\" in value
        or parts.scheme
        or parts.netloc
        or any(ord(c) < 0x20 for c in value)
    ):
        raise Problem(
            400,
            "Adresse de retour refusée : seules les pages de ce site sont permises.",
            kind="invalid-return-to",
        )
    return value


def _flow(request: web.Request) -> Flow:
    flow = FLOWS.get(request.query.get("flow", SIGN.name))
    if flow is None:
        raise Problem(400, "Parcours de connexion inconnu.", kind="invalid-flow")
    return flow


async def login(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    flow = _flow(request)
    default = flow.default_return
    petition = request.query.get("petition")
    if petition is not None:
        if not _PETITION_ID.match(petition):
            raise Problem(400, "Pétition inconnue.", kind="invalid-petition")
        default = f"/petitions/{petition}"
    return_to = local_path(request.query.get("return_to"), default)
    request[WAY_BACK] = return_to
    login_hint = request.query.get("login_hint")
    if login_hint is not None and not _LOGIN_HINT.match(login_hint):
        raise Problem(400, "Indication de connexion invalide.", kind="invalid-login-hint")
    nonce = store.new_secret()
    transaction = store.SignIn(
        flow=flow.name,
        nonce=nonce,
        return_to=return_to,
        as_token=request.query.get("response") == "token",
    )
    try:
        state = await store.begin_sign_in(request.app[REDIS], transaction, gateway.sign_in_timeout)
    except (RedisError, OSError) as exc:
        raise _sign_in_unavailable(exc) from None
    provider = gateway.providers[flow.provider]
    try:
        url = await provider.authorization_url(
            scope=flow.scope,
            redirect_uri=gateway.redirect_uri,
            state=state,
            nonce=nonce,
            login_hint=login_hint,
        )
    except SignInFailed as failure:
        gateway.count(flow, "provider_error")
        log.warning("sign-in cannot start: %s", failure.reason)
        raise _provider_unavailable() from None
    response = web.HTTPFound(url)
    gateway.set_cookie(
        response, gateway.sign_in_cookie, store.binding_of(state), max_age=gateway.sign_in_timeout
    )
    raise response


async def callback(request: web.Request) -> web.StreamResponse:
    gateway = request.app[GATEWAY]
    state = request.query.get("state", "")
    if state and not store.began_here(state, request.cookies.get(gateway.sign_in_cookie)):
        # Someone else's sign-in (login CSRF), or one this browser began before another
        # replaced it; the state is left alone, for the browser that holds its binding.
        gateway.count(await _flow_of(request, state), "other_browser")
        raise Problem(
            400,
            "Cette connexion a été commencée dans un autre navigateur, ou ce navigateur n'a pas "
            "gardé le cookie du site : merci de recommencer la connexion.",
            kind="invalid-state",
        )
    try:
        transaction = await store.take_sign_in(request.app[REDIS], state) if state else None
    except (RedisError, OSError) as exc:
        raise _sign_in_unavailable(exc) from None
    if transaction is None:
        gateway.count(None, "expired_state")
        raise Problem(
            400,
            "Ce lien de connexion a expiré ou a déjà servi : merci de recommencer.",
            kind="invalid-state",
        )
    request[WAY_BACK] = transaction.return_to
    try:
        answer = await _finish_sign_in(request, gateway, transaction)
    except Problem as problem:
        answer = problem.response(request)
    # The state is spent, whatever the outcome: so is the browser's binding to it.
    gateway.delete_cookie(answer, gateway.sign_in_cookie)
    if isinstance(answer, web.HTTPException):
        raise answer
    return answer


async def _flow_of(request: web.Request, state: str) -> Flow | None:
    """The flow a sign-in began in, for its count: None once spent, expired or unreadable."""
    try:
        transaction = await store.peek_sign_in(request.app[REDIS], state)
    except (RedisError, OSError):
        return None  # the refusal stands; only its count loses the flow
    return FLOWS.get(transaction.flow) if transaction else None


async def _finish_sign_in(
    request: web.Request, gateway: Gateway, transaction: store.SignIn
) -> web.Response:
    """The person's token, as JSON or a cookie with the way back; a Problem when refused."""
    flow = FLOWS[transaction.flow]
    error = request.query.get("error")
    if error is not None:
        gateway.count(flow, "cancelled" if error == "access_denied" else "provider_error")
        raise Problem(
            400 if error == "access_denied" else 502,
            _PROVIDER_ERRORS.get(error, "Le fournisseur d'identité a refusé la connexion."),
            kind="sign-in-cancelled" if error == "access_denied" else "provider-error",
        )
    code = request.query.get("code")
    if not code:
        gateway.count(flow, "refused")
        raise Problem(400, "Réponse du fournisseur d'identité incomplète.", kind="invalid-callback")
    provider = gateway.providers[flow.provider]
    try:
        tokens = await provider.exchange(code, gateway.redirect_uri)
        id_claims = await provider.verify_id_token(tokens.id_token, nonce=transaction.nonce)
        userinfo = await provider.userinfo(tokens.access_token, subject=id_claims["sub"])
    except ProviderUnavailable as failure:
        # The provider failed, not the person: down, too slow, an error, an answer out of
        # shape, or keys too old to trust and not given again.
        gateway.count(flow, "provider_error")
        log.warning("sign-in failed at the provider: %s", failure.reason)
        raise _provider_unavailable() from None
    except SignInFailed as failure:
        gateway.count(flow, "refused")
        log.warning("sign-in refused: %s", failure.reason)
        raise Problem(
            401,
            "La connexion n'a pas pu être vérifiée : merci de recommencer.",
            kind="sign-in-refused",
        ) from None
    subject = str(id_claims["sub"])
    if flow is STAFF_FLOW:
        token = _staff_token(gateway, flow, subject, userinfo)
    else:
        try:
            check_adult(userinfo.get("birthdate"))
        except InvalidBirthdate:
            raise _identity_incomplete(
                gateway,
                flow,
                "L'identité transmise par FranceConnect est incomplète : votre date de naissance "
                "manque ou n'est pas valide, et elle est nécessaire pour "
                + ("signer une pétition." if flow is SIGN else "déposer une pétition.")
                + " Merci de recommencer la connexion ; si le problème persiste, contactez le "
                "support de FranceConnect.",
            ) from None
        except NotAnAdult:
            gateway.count(flow, "minor")
            raise Problem(
                403,
                "Ce service est réservé aux personnes majeures : vous ne pouvez pas "
                + ("signer de pétition." if flow is SIGN else "déposer de pétition."),
                kind="not-an-adult",
            ) from None
        if flow is AUTHOR_FLOW:
            token = await _author_token(gateway, flow, subject, userinfo)
        else:
            token = gateway.issue_signer_token(subject)
    # Every personal datum ends here: the claims are dropped with this frame.
    gateway.count(flow, "success")
    lifetime = gateway.lifetime(flow)
    if transaction.as_token:
        return web.json_response(
            {"access_token": token, "token_type": "Bearer", "expires_in": lifetime},
            headers={"Cache-Control": "no-store"},  # a token answer (RFC 6749 §5.1)
        )
    response = web.HTTPFound(transaction.return_to)
    gateway.set_cookie(response, COOKIES[flow.audience], token, max_age=lifetime)
    gateway.set_cookie(
        response,
        PROVIDER_SESSION_COOKIE,
        f"{flow.provider}:{tokens.id_token}",
        max_age=lifetime,
        path="/auth/",
    )
    return response


def _staff_token(gateway: Gateway, flow: Flow, subject: str, userinfo: dict[str, Any]) -> str:
    roles = gateway.staff_roles(subject, userinfo.get("email"))
    if not roles:
        gateway.count(flow, "no_role")
        raise Problem(
            403,
            "Votre compte d'agent n'a pas accès à l'espace de modération.",
            kind="no-staff-role",
        )
    return gateway.issuer.issue(
        flow.audience,
        subject,
        gateway.lifetime(flow),
        roles=roles,
        name=f"{userinfo.get('given_name', '')} {userinfo.get('usual_name', '')}".strip(),
    )


def _identity_incomplete(gateway: Gateway, flow: Flow, detail: str) -> Problem:
    """The provider's identity lacks what the flow needs: nothing is known of the person."""
    gateway.count(flow, "identity_incomplete")
    return Problem(400, detail, kind="identity-incomplete")


async def _author_token(
    gateway: Gateway, flow: Flow, subject: str, userinfo: dict[str, Any]
) -> str:
    given, family = userinfo.get("given_name"), userinfo.get("family_name")
    if not isinstance(given, str) or not isinstance(family, str) or not given or not family:
        raise _identity_incomplete(
            gateway,
            flow,
            "FranceConnect n'a pas transmis vos nom et prénoms : ils sont nécessaires pour "
            "déposer une pétition.",
        )
    email = userinfo.get("email")
    identity = AuthorIdentity(
        given_names=given,
        family_name=family,
        birthdate=str(userinfo["birthdate"]),
        email=email if isinstance(email, str) else None,
    )
    author = author_id(gateway.author_pepper, subject)
    try:
        await gateway.catalog.record_author(author, identity)
    except CatalogUnavailable as exc:
        log.error("the catalogue did not take an author's identity: %s", exc)
        raise Problem(
            503,
            "Votre espace auteur est momentanément indisponible : merci de réessayer.",
            kind="catalog-unavailable",
            headers={"Retry-After": "30"},
        ) from None
    return gateway.issuer.issue(AUTHOR_FLOW.audience, author, gateway.lifetime(AUTHOR_FLOW))


async def logout(request: web.Request) -> web.Response:
    """Clear our cookies, then end the provider's session too when we know of one."""
    gateway = request.app[GATEWAY]
    return_to = local_path(request.query.get("return_to"), "/")
    response: web.HTTPException = web.HTTPFound(return_to)
    provider_session = request.cookies.get(PROVIDER_SESSION_COOKIE, "")
    provider_name, _, id_token = provider_session.partition(":")
    provider = gateway.providers.get(provider_name)
    if provider is not None and id_token:
        try:
            state = await store.begin_sign_out(
                request.app[REDIS], return_to, gateway.sign_in_timeout
            )
        except (RedisError, OSError) as exc:
            # The provider's session ends all the same (a shared computer is left signed out
            # everywhere); only the way back is lost, and /auth/logged-out leads home.
            log.warning("sign-out's return path not kept: %s", type(exc).__name__)
            state = store.new_secret()
        try:
            url = await provider.end_session_url(
                id_token_hint=id_token,
                state=state,
                post_logout_redirect_uri=gateway.post_logout_redirect_uri,
            )
        except SignInFailed as failure:
            log.warning("provider logout unavailable: %s", failure.reason)
            url = None
        if url:
            response = web.HTTPFound(url)
    for cookie in COOKIES.values():
        gateway.delete_cookie(response, cookie)
    gateway.delete_cookie(response, PROVIDER_SESSION_COOKIE, path="/auth/")
    raise response


async def logged_out(request: web.Request) -> web.Response:
    state = request.query.get("state", "")
    try:
        return_to = await store.take_sign_out(request.app[REDIS], state) if state else None
    except (RedisError, OSError) as exc:
        log.warning("sign-out's return path unavailable: %s", type(exc).__name__)
        return_to = None  # signed out already: home rather than an error
    raise web.HTTPFound(return_to or "/")


async def session(request: web.Request) -> web.Response:
    """Which sessions this browser holds, for pages to show the right buttons."""
    verifier = request.app[TOKEN_VERIFIER]
    answer: dict[str, Any] = {}
    for audience, cookie in COOKIES.items():
        token = request.cookies.get(cookie)
        if not token:
            continue
        try:
            claims = verifier.verify(token, audience)
        except InvalidToken:
            continue
        answer[cookie.removeprefix("paraphe_")] = {
            "expires_at": claims.expires_at,
            **({"roles": sorted(claims.roles)} if claims.roles else {}),
        }
    return web.json_response(answer, headers={"Cache-Control": "no-store"})


def _sign_in_unavailable(exc: Exception) -> Problem:
    """Redis, which keeps sign-ins under way, did not answer: a clear 503, never a 500."""
    log.error("sign-in state unavailable: %s", type(exc).__name__)
    return Problem(
        503,
        "La connexion est momentanément indisponible : merci de réessayer dans un instant.",
        kind="sign-in-unavailable",
        headers={"Retry-After": "5"},
    )


def _provider_unavailable() -> Problem:
    return Problem(
        503,
        "Le service d'identification est momentanément indisponible : merci de réessayer.",
        kind="provider-unavailable",
        headers={"Retry-After": "30"},
    )
