"""Prompt plumbing shared by methods, quality and sources: Jinja prompt templates in a sandbox
(``templates``), the ``TemplatedStep`` base of steps that render one and call the LLM
(``templated``), and token-budget text helpers (``textutil``).

It sits below the packages that use it and above ``llm`` (docs/architecture.md, "Layers and
imports"); the template *files* stay next to their method, found relative to the package root.
"""
