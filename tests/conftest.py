"""The whole local stack, as ``make run`` starts it, shared by the cross-service tests."""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator

import pytest

from paraphe_devstack.binaries import Binaries
from paraphe_devstack.stack import Stack, temporary_stack


@pytest.fixture(scope="session")
def stack(binaries: Binaries) -> Iterator[Stack]:
    with temporary_stack(binaries) as started:
        yield started
        # Every flow the tests took ran under the services' NATS users: none may lack a right.
        refused = started.nats.refusals()
        assert not refused, "NATS refused the services:\n" + "\n".join(refused[-20:])


def _service_errors(stack: Stack, limit: int = 20) -> str:
    """The services' last error lines (JSON logs at level error or above, tracebacks)."""
    found: list[str] = []
    for name, process in stack.services.items():
        try:
            lines = process.log_path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and str(record.get("level")).lower() in {
                "error",
                "critical",
            }:
                found.append(f"{name}: {line}")
    return "\n".join(found[-limit:]) or "(no error in the services' logs)"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    # A whole-stack test that fails says what the services logged: CI keeps only this report.
    report = yield
    stack = getattr(item, "funcargs", {}).get("stack")
    if report.failed and isinstance(stack, Stack):
        report.sections.append(("services' errors", _service_errors(stack)))
        report.sections.append(
            ("NATS refusals", "\n".join(stack.nats.refusals()[-20:]) or "(none)")
        )
    return report
