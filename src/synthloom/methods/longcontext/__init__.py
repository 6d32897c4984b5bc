"""IN2 training data (recipe ``long-context``; An et al. 2024, arXiv 2404.16811): QA pairs that
need one short segment (or several) placed at random depths in a long context of filler text."""
