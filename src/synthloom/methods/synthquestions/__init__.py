"""SynthQuestions (arXiv 2506.03968): attributed grounding, as steps and templates."""
