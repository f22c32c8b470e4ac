from pytest_aiohttp import AiohttpClient

from paraphe_auth_gateway.app import create_app
from paraphe_auth_gateway.settings import AuthGatewaySettings
from paraphe_devstack.checks import assert_probes_answer
from paraphe_devstack.servers import RedisServer


async def test_boots_with_redis_and_answers_its_probes(
    aiohttp_client: AiohttpClient, redis_server: RedisServer
) -> None:
    settings = AuthGatewaySettings(redis_url=redis_server.url)
    client = await aiohttp_client(create_app(settings))
    await assert_probes_answer(client, ["redis"])
