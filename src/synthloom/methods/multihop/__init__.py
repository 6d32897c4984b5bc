"""Multi-hop QA from documents (recipe ``multihop-qa``): RAGSynth (arXiv 2505.10989) and
Source2Synth (arXiv 2409.08239) -- clues per chunk, an entity index linking chunks, single- and
multi-hop questions over clue chains, answers verified against the clues, sentence-level
citations, RAGSynth's logical query variants, complete/partial evidence with faithful answers,
retriever positives and hard negatives."""
