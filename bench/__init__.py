"""The mmkeras benchmark harness: `python bench/run.py [--quick] [--json FILE]` (see bench/README.md)."""
