"""APIGen-MT (Prabhakar et al. 2025, arXiv 2504.03601): verified multi-turn agent trajectories
from task blueprints and simulated human-agent interplay (tau-bench's user and reward)."""
