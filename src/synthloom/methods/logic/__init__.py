"""Logic-task data (SynLogic, arXiv 2505.19641): rule-generated puzzles, verified answers, and
an optional model step whose answers the same verifiers grade."""
