"""Data: on-disk readers, built-in generated data sets, per-modality view transforms."""
