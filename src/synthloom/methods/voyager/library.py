"""The skill library (the authors' ``SkillManager``): programs by name, each with its
description, indexed by the embedding of that description and retrieved top-k for a query.

As the authors: a skill whose name is already in the library replaces it (the vector too; its
files were kept as ``nameV2``, here the version counts up); what the sandbox loads before a new
program is every skill's code (``programs``); retrieval returns the k nearest descriptions
(cosine over L2-normalised vectors: numpy, the library is small; the authors used Chroma).
The embedder is synthloom's (``llm/embeddings.py``), cached on disk in the run folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from synthloom.llm.embeddings import Embedder


@dataclass
class Skill:
    name: str
    code: str
    description: str
    task: str
    version: int
    #: Curriculum step (of its explorer) whose program this is.
    step: int

    def document(self) -> str:
        """What is embedded: the authors' ``async function name(bot) { // description }``,
        as Python."""
        return f'def {self.name}(bot):\n    """{self.description}"""'

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "code": self.code,
                "task": self.task, "version": self.version, "step": self.step}


class SkillLibrary:
    def __init__(self, embedder: Embedder, top_k: int = 5) -> None:
        self.embedder = embedder
        self.top_k = top_k
        self.skills: dict[str, Skill] = {}
        self._vectors: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.skills)

    async def add(self, name: str, code: str, description: str, task: str, step: int) -> Skill:
        old = self.skills.get(name)
        skill = Skill(name, code, description, task, old.version + 1 if old else 1, step)
        [vector] = await self.embedder.embed([skill.document()])
        self.skills[name] = skill
        self._vectors[name] = np.asarray(vector, dtype=np.float32)
        return skill

    async def retrieve(self, query: str) -> list[Skill]:
        """The ``top_k`` skills whose descriptions are nearest the query, nearest first."""
        k = min(len(self.skills), self.top_k)
        if k == 0 or not query.strip():
            return []
        names = list(self._vectors)
        [q] = await self.embedder.embed([query])
        scores = np.stack([self._vectors[n] for n in names]) @ np.asarray(q, dtype=np.float32)
        order = np.argsort(-scores, kind="stable")[:k]
        return [self.skills[names[i]] for i in order]

    @property
    def programs(self) -> str:
        """Every skill's code, loaded before a new program runs (the authors' ``programs``)."""
        return "\n\n".join(s.code for s in self.skills.values())
