"""Authors' identities arrive from auth-gateway only, and only names are ever published."""

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from paraphe_common.tokens import AUTHOR, SERVICE, TokenIssuer
from paraphe_devstack.keys import SigningKey

Client = TestClient[web.Request, web.Application]


AUTHOR_ID = "a" * 64
IDENTITY = {
    "given_names": "Camille Marie",
    "family_name": "Durand",
    "birthdate": "1985-03-14",
    "email": "camille.durand@example.org",
}


def service_token(key: SigningKey, subject: str = "auth-gateway", audience: str = SERVICE) -> str:
    return TokenIssuer(key.private_pem, key.kid).issue(audience, subject, 60)


async def put(catalog: Client, token: str, body: object, author: str = AUTHOR_ID) -> int:
    response = await catalog.put(
        f"/internal/authors/{author}", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    return response.status


async def stored(database_url: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(database_url)
    try:
        return await connection.fetch(
            "SELECT given_names, family_name, birthdate::text, email FROM catalog.authors"
            " WHERE id = $1",
            AUTHOR_ID,
        )
    finally:
        await connection.close()


async def test_the_gateway_records_an_author_and_refreshes_it(
    catalog: Client, signing_key: SigningKey, database_url: str
) -> None:
    assert await put(catalog, service_token(signing_key), IDENTITY) == 204
    renamed = IDENTITY | {"family_name": "Durand-Martin"}
    assert await put(catalog, service_token(signing_key), renamed) == 204
    rows = await stored(database_url)
    assert [tuple(row) for row in rows] == [
        ("Camille Marie", "Durand-Martin", "1985-03-14", "camille.durand@example.org")
    ]


@pytest.mark.parametrize(
    ("subject", "audience", "status"),
    [("auth-gateway", AUTHOR, 401), ("counter", SERVICE, 403)],
)
async def test_no_one_else_may_record_an_identity(
    catalog: Client, signing_key: SigningKey, subject: str, audience: str, status: int
) -> None:
    assert await put(catalog, service_token(signing_key, subject, audience), IDENTITY) == status


@pytest.mark.parametrize(
    "body",
    [
        IDENTITY | {"birthdate": "14/03/1985"},
        IDENTITY | {"given_names": ""},
        IDENTITY | {"is_admin": True},
        IDENTITY | {"given_names": "Chloé\u0000"},  # PostgreSQL refuses NUL: not a 500
        IDENTITY | {"family_name": "Martin\nDupont"},
        "not an object",
    ],
)
async def test_an_invalid_identity_is_a_422_and_nothing_is_written(
    catalog: Client, signing_key: SigningKey, database_url: str, body: object
) -> None:
    assert await put(catalog, service_token(signing_key), body) == 422
    assert await stored(database_url) == []


async def test_a_malformed_author_id_is_not_found(catalog: Client, signing_key: SigningKey) -> None:
    assert await put(catalog, service_token(signing_key), IDENTITY, author="x") == 404
