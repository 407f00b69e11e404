"""The emulator's stall watch: a blocked event loop is reported with where it was."""

from __future__ import annotations

import asyncio
import time

from eks_hub_sandbox.kube.stalls import StallWatch


def _block_the_loop_for(seconds: float) -> None:
    time.sleep(seconds)


def test_a_blocked_loop_is_reported_with_its_stack_and_a_busy_one_is_not(caplog):
    async def main() -> StallWatch:
        watch = StallWatch(threshold=0.3, interval=0.05)
        watch.start()
        for _ in range(10):  # a loop that keeps turning: no stall
            await asyncio.sleep(0.02)
        _block_the_loop_for(0.8)
        await asyncio.sleep(0.3)
        watch.stop()
        return watch

    with caplog.at_level("WARNING", logger="eks_hub_sandbox.kube.stalls"):
        watch = asyncio.run(main())
    assert len(watch.stalls) == 1, watch.stalls
    seconds, where = watch.stalls[0]
    assert 0.6 <= seconds <= 1.5
    assert "_block_the_loop_for" in where[0][0] and "time.sleep(seconds)" in where[0][0]
    assert "event loop stalled for" in caplog.text and "_block_the_loop_for" in caplog.text
