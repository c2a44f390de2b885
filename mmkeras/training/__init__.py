"""Strategy selection, per-worker input pipelines, callbacks (backup, best epoch, history) and the fit loop."""
