"""TarGEN (Gupta et al. 2023, arXiv 2310.17876): targeted synthetic data for a task described
in words - contexts, instance seeds, label-conditioned generation, then self-correction.
"""
