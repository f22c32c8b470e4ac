"""The local view of petition states: read whole at start, then kept current."""

import asyncio
import time

from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from paraphe_common.app import create_service_app
from paraphe_common.petition_states import (
    PETITION_STATES,
    PetitionState,
    PetitionStates,
    petition_states,
    publish_state,
)
from paraphe_common.resources import JETSTREAM, nats_connection
from paraphe_common.settings import NatsSettings, ServiceSettings
from paraphe_common.streams import petitions_bucket
from paraphe_devstack.servers import NatsServer

Client = TestClient[web.Request, web.Application]
OPEN = PetitionState("published", time.time() + 3600)


class Settings(ServiceSettings, NatsSettings):
    pass


async def start(aiohttp_client: AiohttpClient, nats_server: NatsServer) -> Client:
    settings = Settings(nats_url=nats_server.url)
    app = create_service_app(
        "example", settings, [nats_connection(settings, name="example"), petition_states()]
    )
    return await aiohttp_client(app)


async def until(condition, within: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def test_states_written_before_start_are_known_at_start(
    aiohttp_client: AiohttpClient, nats_server: NatsServer
) -> None:
    writer = await start(aiohttp_client, nats_server)
    bucket = await petitions_bucket(writer.app[JETSTREAM])
    await publish_state(bucket, "p-open", OPEN)
    await publish_state(bucket, "p-closed", PetitionState("closed", None))

    reader = await start(aiohttp_client, nats_server)
    states: PetitionStates = reader.app[PETITION_STATES]
    assert states.is_open("p-open")
    assert not states.is_open("p-closed")
    assert states.get("p-unknown") is None
    assert "petition-states" in (await (await reader.get("/readyz")).json())["dependencies"]


async def test_changes_reach_a_running_view(
    aiohttp_client: AiohttpClient, nats_server: NatsServer
) -> None:
    client = await start(aiohttp_client, nats_server)
    states = client.app[PETITION_STATES]
    bucket = await petitions_bucket(client.app[JETSTREAM])
    await publish_state(bucket, "p-1", OPEN)
    assert await until(lambda: states.is_open("p-1"))
    await publish_state(bucket, "p-1", PetitionState("hidden", None))
    assert await until(lambda: not states.is_open("p-1"))
    await bucket.delete("p-1")
    assert await until(lambda: states.get("p-1") is None)


def test_a_published_petition_closes_at_its_deadline() -> None:
    state = PetitionState("published", 1000.0)
    assert state.is_open(999.9)
    assert not state.is_open(1000.0)
    assert PetitionState.decode(state.encode()) == state


async def test_the_view_follows_again_after_the_nats_server_restarts(
    aiohttp_client: AiohttpClient, nats_server: NatsServer
) -> None:
    client = await start(aiohttp_client, nats_server)
    states = client.app[PETITION_STATES]
    bucket = await petitions_bucket(client.app[JETSTREAM])
    await publish_state(bucket, "before", OPEN)
    await publish_state(bucket, "deleted-while-away", OPEN)
    assert await until(lambda: states.is_open("deleted-while-away"))

    nats_server.stop()
    nats_server.start()
    writer = await start(aiohttp_client, nats_server)
    bucket = await petitions_bucket(writer.app[JETSTREAM])
    await publish_state(bucket, "after", OPEN)
    await bucket.delete("deleted-while-away")

    assert await until(lambda: states.is_open("after"), within=15)
    assert await until(lambda: states.get("deleted-while-away") is None)
    assert states.is_open("before")
