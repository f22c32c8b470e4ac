"""The real process: it refuses a bad configuration in one line and logs no personal data."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from urllib.parse import parse_qs, urlsplit

import aiohttp
from jose import jwt

from paraphe_devstack.servers import free_port, port_answers
from paraphe_franceconnect_sandbox.identities import CAMILLE_DURAND

SECRET = "secret-du-processus-de-test"
REDIRECT_URI = "http://localhost:8080/auth/callback"
CLIENTS = [{"client_id": "paraphe", "client_secret": SECRET, "redirect_uris": [REDIRECT_URI]}]
STATE = "etat-du-processus-0123456789"
NONCE = "nonce-du-processus-0123456789"


def sandbox_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARAPHE_")}
    env.update({f"PARAPHE_{k.upper()}": v for k, v in settings.items()})
    return env


def test_malformed_clients_end_the_process_with_one_clear_line() -> None:
    clients = json.dumps([{"client_id": "paraphe", "client_secret": SECRET, "redirect_uris": 3}])
    done = subprocess.run(
        [sys.executable, "-m", "paraphe_franceconnect_sandbox"],
        env=sandbox_env(sandbox_issuer="http://localhost:8106", sandbox_clients=clients),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("paraphe-franceconnect-sandbox: invalid configuration:")
    assert "PARAPHE_SANDBOX_CLIENTS" in lines[0]
    assert SECRET not in done.stderr + done.stdout


async def test_a_full_sign_in_logs_no_personal_data_nor_credentials() -> None:
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    env = sandbox_env(
        host="127.0.0.1",
        port=str(port),
        sandbox_issuer=issuer,
        sandbox_clients=json.dumps(CLIENTS),
        log_level="DEBUG",
        access_log="true",  # every line a request can write is searched
    )
    with subprocess.Popen(
        [sys.executable, "-m", "paraphe_franceconnect_sandbox"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as process:
        try:
            deadline = time.monotonic() + 30
            while not port_answers(port):
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "the sandbox did not start listening"
                await asyncio.sleep(0.05)
            seen = await sign_in_and_out(issuer)
        finally:
            process.send_signal(signal.SIGTERM)
            stdout, stderr = process.communicate(timeout=30)
    logs = stdout.decode()
    assert process.returncode == 0, stderr.decode()
    assert '"path": "/api/v2/token"' in logs  # the access log did run
    for secret in [*seen, SECRET, STATE, NONCE, "Camille", "Durand", "1985-03-14", "camille"]:
        assert secret not in logs


async def sign_in_and_out(issuer: str) -> list[str]:
    """Authorize, redeem, read userinfo; every value a log must not show."""
    async with aiohttp.ClientSession() as http:
        async with http.get(
            f"{issuer}/api/v2/authorize",
            params={
                "client_id": "paraphe",
                "redirect_uri": REDIRECT_URI,
                "response_type": "code",
                "scope": "openid given_name family_name birthdate email",
                "state": STATE,
                "nonce": NONCE,
                "login_hint": CAMILLE_DURAND,
            },
            allow_redirects=False,
        ) as response:
            assert response.status == 302
            code = parse_qs(urlsplit(response.headers["Location"]).query)["code"][0]
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "client_id": "paraphe",
            "client_secret": SECRET,
        }
        async with http.post(f"{issuer}/api/v2/token", data=form) as response:
            assert response.status == 200
            tokens = await response.json()
        async with http.get(
            f"{issuer}/api/v2/userinfo",
            headers={"Authorization": f"Bearer {tokens['access_token']}"},
        ) as response:
            assert response.status == 200
            userinfo = await response.text()
        async with http.get(
            f"{issuer}/api/v2/session/end",
            params={"id_token_hint": tokens["id_token"], "state": STATE},
            allow_redirects=False,
        ) as response:
            assert response.status == 400  # no post_logout_redirect_uri: refused, on a page
    subject = jwt.get_unverified_claims(tokens["id_token"])["sub"]
    return [code, tokens["access_token"], tokens["id_token"], userinfo, subject]
