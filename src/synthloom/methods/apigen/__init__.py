"""APIGen (Liu et al. 2024, arXiv 2406.18518): verified function-calling data."""
