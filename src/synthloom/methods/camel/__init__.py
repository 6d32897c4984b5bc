"""CAMEL role-playing (Li et al. 2023, arXiv 2303.17760): two agents, one task, a dialogue.

A task specifier makes a seed task specific; an AI user (instructs: "Instruction: ... Input:
...") and an AI assistant (answers: "Solution: ... Next request.") then talk under the paper's
inception prompts until the user says <CAMEL_TASK_DONE> or a stop rule fires (``steps``).
The AI Society generation before that -- role lists (optionally the LLM's), then ``num_tasks``
tasks per role pair from the task generation prompt -- is in ``society`` (``camel-society``).
"""
