"""Voyager, "An Open-Ended Embodied Agent with Large Language Models" (Wang et al. 2023, arXiv
2305.16291), after the authors' code (MineDojo/Voyager: voyager/voyager.py, voyager/agents/,
voyager/prompts/), in a small crafting world run in synthloom's sandbox instead of Minecraft:
an automatic curriculum, an action agent that writes programs with retrieved skills and
iterates on execution errors and critiques, a critic, and an embedding-indexed skill library.
"""
