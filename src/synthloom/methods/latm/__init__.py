"""LATM, "Large Language Models as Tool Makers" (Cai et al. 2023, arXiv 2305.17126), after the
authors' notebooks (ctlllll/LLM-ToolMaker: toolmaker.ipynb, tooluser.ipynb): a tool made from
a few demonstrations of a task with gold answers, verified by unit tests on validation examples,
repaired on failure, wrapped with usage demos; a dispatcher routes new questions to a tool (or
"unknown"); a tool user solves them by a function call, scored against the gold answer.
"""
