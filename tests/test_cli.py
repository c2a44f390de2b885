"""The CLI's TensorFlow start-up: silent, yet a failure inside it stays visible."""
import subprocess
import sys

SCRIPT = """
import os, sys
from mmkeras.cli import native_stderr_silenced
with native_stderr_silenced():
    os.write(2, b"native noise\\n")
print("after", file=sys.stderr)
try:
    with native_stderr_silenced():
        os.write(2, b"why it failed\\n")
        raise ImportError("boom")
except ImportError:
    print("caught", file=sys.stderr)
"""


def test_native_stderr_is_hidden_and_replayed_when_the_block_fails():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == ["after", "why it failed", "caught"]
