"""Run a service under cProfile counting CPU time (process time), switched on and off by
signals, so the profile covers the measured phase only and other processes' load on the
machine does not show up as time spent: SIGUSR1 starts, SIGUSR2 stops and writes the file.

    python bench/profiled_service.py <output.prof> <module> [args...]
"""

from __future__ import annotations

import cProfile
import runpy
import signal
import sys
import time
from types import FrameType


def main() -> None:
    output, module, *args = sys.argv[1:]
    profile = cProfile.Profile(timer=time.process_time)

    def start(signum: int, frame: FrameType | None) -> None:
        profile.enable()

    def stop(signum: int, frame: FrameType | None) -> None:
        profile.disable()
        profile.dump_stats(output)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
