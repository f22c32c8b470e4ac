"""The whole local stack, as ``make run`` starts it, shared by the cross-service tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from paraphe_devstack.binaries import Binaries
from paraphe_devstack.stack import Stack, temporary_stack


@pytest.fixture(scope="session")
def stack(binaries: Binaries) -> Iterator[Stack]:
    with temporary_stack(binaries) as started:
        yield started
