"""Toolformer (Schick et al. 2023, arXiv 2302.04761): API calls kept where they help the model
predict the text that follows (see ``steps.py`` and ``losses.py``)."""
