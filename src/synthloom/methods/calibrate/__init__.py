"""Difficulty calibration against models (SynLogic's band): k samples per item from a target
model (and optionally a strong one), graded by the item's own verifier; items kept inside a
pass-rate band; a report table per task (level -> pass rate -> kept)."""
