"""Instruction backtranslation (recipe ``backtranslation``; Humpback, Li et al. 2023, arXiv
2308.06259): a document segment is the answer, the model writes its instruction, then rates the
pair 1-5 and keeps the good ones (self-curation)."""
