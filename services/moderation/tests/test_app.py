from collections.abc import Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from paraphe_common.tokens import MODERATOR, SIGNER, STAFF, TokenIssuer
from paraphe_devstack.checks import assert_probes_answer
from paraphe_devstack.keys import SigningKey, new_signer_key, new_signing_key

Client = TestClient[web.Request, web.Application]


async def test_boots_with_postgresql_and_nats_and_answers_its_probes(moderation: Client) -> None:
    await assert_probes_answer(moderation, ["events", "nats", "petition-states", "postgresql"])


async def test_an_agent_sees_the_roles_the_gateway_granted(
    moderation: Client, signing_key: SigningKey
) -> None:
    token = TokenIssuer(signing_key.private_pem, signing_key.kid).issue(
        STAFF, "agent-1", 600, roles=frozenset({MODERATOR}), name="Marie Modératrice"
    )
    response = await moderation.get("/api/moderation/me", cookies={"paraphe_staff": token})
    assert response.status == 200
    assert await response.json() == {"name": "Marie Modératrice", "roles": [MODERATOR]}


IssueToken = Callable[[SigningKey], str]


@pytest.mark.parametrize(
    ("token_of", "status"),
    [
        pytest.param(lambda key: "", 401, id="no token"),
        pytest.param(
            lambda key: new_signer_key().issuer().issue(SIGNER, "s" * 64, 600),
            401,
            id="a citizen's signer token",
        ),
        pytest.param(
            lambda key: TokenIssuer(new_signing_key(key.kid).private_pem, key.kid).issue(
                STAFF, "forger", 600, roles=frozenset({"admin"})
            ),
            401,
            id="a staff token the citizen signed themselves",
        ),
    ],
)
async def test_only_staff_tokens_open_the_staff_api(
    moderation: Client, signing_key: SigningKey, token_of: IssueToken, status: int
) -> None:
    token = token_of(signing_key)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await moderation.get("/api/moderation/me", headers=headers)
    assert response.status == status
    assert response.content_type == "application/problem+json"
