"""Strategy selection, callbacks and the fit loop glue."""
