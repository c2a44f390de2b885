"""Stage 2: `python -m export RUN_DIR` turns a finished run into deployable artifacts."""
