"""`python -m export RUN_DIR ...` from the repository root runs `python -m mmkeras.export`."""
import sys

from mmkeras.cli import run_cli
from mmkeras.export.__main__ import main, parse_args

if __name__ == "__main__":
    sys.exit(run_cli(main, parse_args()))
