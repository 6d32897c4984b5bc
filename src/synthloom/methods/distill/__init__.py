"""Reasoning distillation (the OpenThoughts pipeline): N samples per question from a reasoning
model, reasoning kept apart, each sample verified by its domain, pass rate kept."""
