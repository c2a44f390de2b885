"""Run one training command and measure it the same way for every tool.

Wall time is the whole command (start-up, data preparation, training, evaluation).
Peak RSS is the peak of the summed resident memory of the process and all its
descendants, sampled every 0.1 s from /proc: a peer that trains in worker
processes (Ludwig's data loaders, Ray) is charged for them as mmkeras is for its
own, where `ru_maxrss` would see one process only.
"""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")


def _children(pid: int) -> list[int]:
    kids = []
    task_dir = Path(f"/proc/{pid}/task")
    try:
        for task in task_dir.iterdir():
            text = (task / "children").read_text()
            kids.extend(int(c) for c in text.split())
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return kids


def _tree_rss(pid: int) -> int:
    total, stack, seen = 0, [pid], set()
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * PAGE
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        stack.extend(_children(p))
    return total


def run_measured(command: list[str], log_path: Path, *, env: dict | None = None, cwd: str | None = None,
                 timeout_s: float | None = None) -> dict:
    """Run `command` with stdout and stderr to `log_path`; return returncode, wall_s, peak_rss_mb."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    peak = 0
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        timed_out = False
        while proc.poll() is None:
            peak = max(peak, _tree_rss(proc.pid))
            if timeout_s and time.monotonic() - start > timeout_s:
                proc.kill()
                timed_out = True
            time.sleep(0.1)
    return {"returncode": proc.returncode, "wall_s": round(time.monotonic() - start, 1),
            "peak_rss_mb": round(peak / 2**20, 1), "timed_out": timed_out, "log": str(log_path)}
