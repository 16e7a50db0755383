"""Diagnostics of trained runs that are not attacks: :mod:`.smoothness`, the per-layer
label-signal smoothness (``rbg smoothness``, LapNet Fig. 3)."""
