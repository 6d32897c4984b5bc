"""Document QA (recipe ``doc-qa``): per-chunk QA pairs, groundedness check, question dedup."""
