import json

from pytest_aiohttp import AiohttpClient

from paraphe_devstack.checks import assert_probes_answer
from paraphe_franceconnect_sandbox.app import create_app
from paraphe_franceconnect_sandbox.settings import FranceconnectSandboxSettings


async def test_boots_with_no_dependency_and_answers_its_probes(
    aiohttp_client: AiohttpClient,
) -> None:
    clients = [{"client_id": "rp", "client_secret": "secret", "redirect_uris": ["http://rp/cb"]}]
    settings = FranceconnectSandboxSettings(
        sandbox_issuer="http://localhost:8106", sandbox_clients=json.dumps(clients)
    )
    client = await aiohttp_client(create_app(settings))
    await assert_probes_answer(client, [])
