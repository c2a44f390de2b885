"""Metrics, per-modality ablation and plots."""
