"""Manifest reading, records, targets and the tf.data pipeline (the modalities are `mmkeras.modalities`)."""
