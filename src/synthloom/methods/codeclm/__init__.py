"""CodecLM (Wang et al. 2024, arXiv 2404.05875), recipe ``codeclm``: seed instructions encoded
into metadata (use case, skills), decoded into new instructions, made harder with Self-Rubrics,
and kept by Contrastive Filtering where a strong model clearly beats the target model."""
