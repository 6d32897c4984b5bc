"""PersonaHub (Ge et al. 2024, arXiv 2406.20094), recipe ``personas``: personas read off text
chunks (text-to-persona), expanded through close relationships (persona-to-persona),
deduplicated (MinHash, then embeddings), then used to condition task synthesis (math problems,
user instructions, knowledge-rich articles)."""
