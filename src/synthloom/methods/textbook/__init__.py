"""Synthetic textbooks (recipe ``textbook``): phi-1 "Textbooks Are All You Need" (Gunasekar et
al. 2023, arXiv 2306.11644) and the phi-1.5 / Cosmopedia prompts - topic x audience x style
combinations, each written up as a textbook section with a worked example and exercises with
solutions, kept only when that structure is really there."""
