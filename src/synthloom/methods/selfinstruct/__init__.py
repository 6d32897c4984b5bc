"""Self-Instruct (Wang et al. 2022, arXiv 2212.10560): a seed task pool grows by bootstrapping.

``bootstrap`` (global step) grows the pool over rounds with a ROUGE-L novelty filter and the
paper's heuristic filters; ``instances`` writes input/output instances (input-first, or
output-first for classification tasks); ``drop_rejected`` (``methods/common/reject.py``)
drops what a step marked as rejected.
"""
