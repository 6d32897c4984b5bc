"""Orca explanation tuning (Mukherjee et al. 2023, arXiv 2306.02707): rich, step-by-step
explanations elicited by system messages, instead of bare answers."""
