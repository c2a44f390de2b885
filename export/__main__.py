"""python -m export RUN_DIR — not implemented yet (the export stage is its own issue).

It exits 2 with one line instead of pretending to export.
"""
import sys

if __name__ == "__main__":
    print("error: python -m export is not implemented yet; a trained run's model.keras, labels.json "
          "and vocab/ are kept so it can be exported later without retraining", file=sys.stderr)
    sys.exit(2)
