"""Reward modules that ``synthloom export --format verl|grpo|verifiers`` copies next to the
data: each stands alone (it imports only synthloom's verifiers), so a trainer loads it by path.
"""
