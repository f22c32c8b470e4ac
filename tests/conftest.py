"""The whole local stack, as ``make run`` starts it, shared by the cross-service tests."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from paraphe_devstack.binaries import Binaries
from paraphe_devstack.servers import remove_tree
from paraphe_devstack.stack import Stack, StackPorts


@pytest.fixture(scope="session")
def stack(binaries: Binaries) -> Iterator[Stack]:
    # Not under pytest's tmp_path: PostgreSQL runs as its own account and must reach its data.
    state_dir = Path(tempfile.mkdtemp(prefix="paraphe-test-stack-"))
    state_dir.chmod(0o755)
    stack = Stack(state_dir, StackPorts.free(), binaries, durable=False)
    stack.start()
    yield stack
    stack.stop()
    remove_tree(state_dir)
