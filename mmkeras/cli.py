"""Shared command-line behaviour: user errors are one line and exit 2; --debug shows tracebacks;
TensorFlow starts silently."""
import contextlib
import os
import sys
import tempfile
import time

from mmkeras.errors import UserError


def quiet_tensorflow():
    """Hide TensorFlow's C++ info/warning lines at CLI start (never at library import)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@contextlib.contextmanager
def native_stderr_silenced():
    """File descriptor 2 → a temporary file for the block; what was written is replayed if it fails.

    TensorFlow's C++ runtime writes its start-up lines ("All log messages before
    absl::InitializeLog() is called ...", the CUDA stubs, "failed call to cuInit" on a machine
    without a GPU) to the descriptor itself, before TF_CPP_MIN_LOG_LEVEL is read, so neither
    the variable nor sys.stderr can hide them. An import error stays visible: it is replayed.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except BaseException:
            sys.stderr.flush()
            os.dup2(saved, 2)
            captured.seek(0)
            os.write(2, captured.read())
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def start_tensorflow(debug=False):
    """Import TensorFlow and list its devices (where CUDA is probed) with its start-up noise
    hidden, unless `debug`; → the tensorflow module. Later imports of it are free."""
    quiet_tensorflow()
    with contextlib.nullcontext() if debug else native_stderr_silenced():
        import tensorflow as tf
        import tf_keras  # noqa: F401  (its import prints the same start-up lines again)

        tf.config.list_physical_devices()
    return tf


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
