"""Token verification on the signing hot path: what one check costs, cold and cached.

Run with ``make bench`` (or ``.venv/bin/python bench/tokens.py``). Prints a table and writes
``bench/results/tokens.json``. A benchmark, not a test: nothing here passes or fails.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

from jose import jwt

from paraphe_common.tokens import (
    SIGNER,
    TokenIssuer,
    TokenVerifier,
    public_keys,
    signer_secret_keys,
)
from paraphe_devstack.keys import new_signer_key, new_signing_key

ROUNDS = 5_000


def per_call(action: Callable[[int], object], rounds: int = ROUNDS) -> float:
    """Microseconds per call, best of three runs."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for n in range(rounds):
            action(n)
        best = min(best, (time.perf_counter() - started) / rounds * 1e6)
    return best


def main() -> None:
    key = new_signing_key("bench")
    issuer = TokenIssuer(key.private_pem, key.kid)
    keys = public_keys(key.public_jwks)
    tokens = [issuer.issue(SIGNER, f"{n:064x}", 1800) for n in range(ROUNDS)]
    cold = TokenVerifier(keys, cache_size=0)
    signer = new_signer_key("bench-signer")
    signer_tokens = [signer.issuer().issue(SIGNER, f"{n:064x}", 1800) for n in range(ROUNDS)]
    signer_cold = TokenVerifier(signer_secret_keys(signer.secret_jwks), cache_size=0)
    warm = TokenVerifier(keys)
    for token in tokens:
        warm.verify(token, SIGNER)
    public_key = keys["bench"].key
    rows = {
        "issue (auth-gateway)": per_call(lambda n: issuer.issue(SIGNER, "s" * 64, 1800)),
        "python-jose decode alone": per_call(
            lambda n: jwt.decode(
                tokens[n], public_key, algorithms=["ES256"], audience=SIGNER, issuer="paraphe"
            )
        ),
        "verify ES256, distinct tokens (cold)": per_call(lambda n: cold.verify(tokens[n], SIGNER)),
        "verify HS256 signer token (cold)": per_call(
            lambda n: signer_cold.verify(signer_tokens[n], SIGNER)
        ),
        "verify, token seen before (cached)": per_call(lambda n: warm.verify(tokens[n], SIGNER)),
    }
    machine = (
        f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}"
    )
    print(f"Token verification, {machine}")
    for name, micros in rows.items():
        print(f"  {name:<40} {micros:8.1f} µs   {1e6 / micros:>10,.0f} /s per core")
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    (results / "tokens.json").write_text(
        json.dumps({"machine": machine, "microseconds_per_call": rows}, indent=2)
    )


if __name__ == "__main__":
    main()
