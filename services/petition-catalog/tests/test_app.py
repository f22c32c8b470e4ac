from aiohttp import web
from aiohttp.test_utils import TestClient

from paraphe_devstack.checks import assert_probes_answer


async def test_boots_with_postgresql_redis_and_nats_and_answers_its_probes(
    catalog: TestClient[web.Request, web.Application],
) -> None:
    await assert_probes_answer(catalog, ["postgresql", "redis", "nats"])
