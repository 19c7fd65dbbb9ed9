"""``python -m benchmarks.launch RESULT.json COMMAND...``: run COMMAND, measure it whole.

Writes the command's wall time (from fork to exit), CPU (user + system) and peak
resident memory to RESULT.json, and exits with its exit status. It exists because a
child's ``ru_maxrss`` counts the memory of the process it was forked from until it
execs: ``subprocess`` forks the benchmark itself (with ``vfork``, sharing its
memory), so a direct measurement would report the benchmark's size, not the
command's. This launcher is small, so what it reports is the command's own.
"""

from __future__ import annotations

import json
import os
import sys
import time


def main(argv: list[str]) -> int:
    result_path, *command = argv
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child becomes the command
        try:
            os.execvp(command[0], command)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    with open(result_path, "w") as out:
        json.dump(
            {
                "wall_seconds": wall,
                "cpu_seconds": usage.ru_utime + usage.ru_stime,
                "peak_rss_mb": usage.ru_maxrss / 1024,  # KiB on Linux
                "exit": code,
            },
            out,
        )
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
