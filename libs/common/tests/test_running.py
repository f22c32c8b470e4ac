"""A service's loop runs while its cleanup context lasts, and ends with it."""

from __future__ import annotations

import asyncio

import pytest

from paraphe_common.resources import running


async def test_the_work_runs_while_the_block_lasts_and_is_cancelled_at_its_end() -> None:
    started, ended = asyncio.Event(), asyncio.Event()

    async def loop() -> None:
        started.set()
        try:
            await asyncio.Event().wait()  # forever, as a service's loop
        finally:
            ended.set()

    async with running(loop(), "a-loop"):
        await asyncio.wait_for(started.wait(), 5)
        assert not ended.is_set()
        assert any(task.get_name() == "a-loop" for task in asyncio.all_tasks())
    assert ended.is_set()  # cancelled, and awaited before the block returned
    assert not any(task.get_name() == "a-loop" for task in asyncio.all_tasks())


async def test_a_loop_that_failed_reports_its_failure_at_the_end() -> None:
    """A loop handles its own failures; one it did not handle is not lost when the block ends."""

    async def broken() -> None:
        raise RuntimeError("the loop broke")

    with pytest.raises(RuntimeError, match="the loop broke"):
        async with running(broken(), "broken"):
            await asyncio.sleep(0)
