"""Run a command; write its exit code and its own peak RSS to a JSON file.

    python -m bench.peak_rss OUT.json COMMAND [ARGS...]

Why a wrapper: Linux carries a process's peak RSS across execve, so a child that a
large process starts (the harness holds models and data sets) reports at least
its parent's peak through `os.wait4`. This wrapper is a small, fresh process: the
peak it reads for its own child is that child's.
"""
import json
import os
import subprocess
import sys


def main(argv):
    out, command = argv[0], argv[1:]
    proc = subprocess.Popen(command)
    _, status, usage = os.wait4(proc.pid, 0)  # the usage of exactly this child
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"returncode": proc.returncode, "peak_rss_bytes": usage.ru_maxrss * 1024}, f)  # Linux: KiB
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
