"""Source2Synth (Lupidi et al. 2024, arXiv 2409.08239; Meta, no public code known): synthetic
entries grounded in real sources - multi-hop questions over documents (the ``source2synth``
recipe reuses ``methods/multihop`` for generation) and questions over tables answered through
SQL executed on SQLite (``source2synth-tables``) - then curated: sliced, filtered by whether a
curator model answers correctly in k tries, and imputed (the question blanked and rewritten).
"""
