"""The floor of a signature: intake's obligations alone, on aiohttp's low-level server.

What the issue asks of every signature, done with intake's own parts and nothing else: the
signer token checked (``TokenVerifier``), the dedupe key (HMAC), the Redis mark and the
JetStream publish whose ack comes before the answer (``Intake.accept``: the marks writer and
``AckedPublisher``), and the answer. No application, router or middleware; no petition state,
pepper, limits, velocity, metrics, request id or security headers. Whatever intake measures
above this is the platform around the obligations; this is what the libraries themselves
(aiohttp, redis-py, nats-py) cost for them on this machine.

Run by ``bench/intake.py`` with intake's environment (``PARAPHE_PORT``, ``PARAPHE_REDIS_URL``,
``PARAPHE_NATS_URL``, ``PARAPHE_NATS_TLS_CA``, ``PARAPHE_SIGNER_TOKEN_KEYS``). A benchmark's
yardstick, never served.
"""

import asyncio
import contextlib
import json
import os
import ssl

import nats
import redis.asyncio as aioredis
import uvloop
from aiohttp import web

from paraphe_common.streams import ensure_signatures_stream
from paraphe_common.tokens import SIGNER, TokenVerifier, signer_secret_keys
from paraphe_signature_intake.publisher import AckedPublisher
from paraphe_signature_intake.signatures import Intake, Outcome, dedupe_key

PREFIX, SUFFIX = "/api/petitions/", "/signatures"


async def serve() -> None:
    # As intake: the password, and TLS when the servers have it.
    redis_ca = os.environ.get("PARAPHE_REDIS_TLS_CA")
    redis = aioredis.from_url(
        os.environ["PARAPHE_REDIS_URL"],
        password=os.environ.get("PARAPHE_REDIS_PASSWORD"),
        **({"ssl_ca_certs": redis_ca} if redis_ca else {}),
    )
    ca = os.environ.get("PARAPHE_NATS_TLS_CA")
    tls = ssl.create_default_context(cafile=ca) if ca else None
    connection = await nats.connect(os.environ["PARAPHE_NATS_URL"], tls=tls)
    await ensure_signatures_stream(connection.jetstream())
    publisher = AckedPublisher(connection, 5.0)
    await publisher.start()
    intake = Intake(redis, publisher, pending_ttl=60)
    verifier = TokenVerifier(signer_secret_keys(os.environ["PARAPHE_SIGNER_TOKEN_KEYS"]))
    bodies: dict[tuple[str, Outcome], bytes] = {}

    async def sign(request: web.BaseRequest) -> web.Response:
        path = request.path
        if request.method != "POST" or not (path.startswith(PREFIX) and path.endswith(SUFFIX)):
            return web.Response(status=404)
        petition = path[len(PREFIX) : -len(SUFFIX)]
        claims = verifier.verify(request.headers["Authorization"][len("Bearer ") :], SIGNER)
        outcome = await intake.accept(petition, dedupe_key(claims.subject, petition))
        body = bodies.get((petition, outcome))
        if body is None:
            body = json.dumps({"petition_id": petition, "status": outcome.value}).encode()
            bodies[petition, outcome] = body
        status = 202 if outcome is Outcome.ACCEPTED else 200
        return web.Response(body=body, status=status, content_type="application/json")

    runner = web.ServerRunner(web.Server(sign, access_log=None))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", int(os.environ["PARAPHE_PORT"])).start()
    try:
        await asyncio.Event().wait()  # until SIGINT
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):  # bench/intake.py stops it with SIGINT
        uvloop.run(serve())
