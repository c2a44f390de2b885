"""Shared command-line behaviour: user errors are one line and exit 2; --debug shows tracebacks."""
import os
import sys
import time

from mmkeras.errors import UserError


def quiet_tensorflow():
    """Hide TensorFlow's C++ info/warning lines at CLI start (never at library import)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def step(message):
    """A progress line with the wall-clock time, flushed at once (long commands, logs)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def run_cli(main, args):
    """Run `main(args)`; map user errors to one stderr line and exit code 2."""
    try:
        main(args)
    except UserError as e:
        if getattr(args, "debug", False):
            raise
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    return 0
