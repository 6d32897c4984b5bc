"""Evol-Instruct (WizardLM, Xu et al. 2023, arXiv 2304.12244; WizardCoder, Luo et al. 2023,
arXiv 2306.08568): instructions evolve over rounds by in-depth and in-breadth operators; an
eliminator discards failed evolutions, whose parent goes back to the pool for the next round.
"""
