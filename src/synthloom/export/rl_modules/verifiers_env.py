"""A ``verifiers``-style environment, written by ``synthloom export --format verifiers``.

``load_environment()`` returns ``verifiers.SingleTurnEnv(dataset=..., rubric=Rubric([reward]))``
where the classic verifiers API (``SingleTurnEnv``, ``Rubric``) is installed, else a
:class:`SynthloomEnvironment` with the same parts (``dataset`` rows, ``rubric`` functions,
``score``). Rows (``train.jsonl`` beside this file): ``prompt`` messages, ``question``,
``answer`` (the ground truth, a JSON string), ``task`` (the data source) and ``info``.
A completion scores 1.0 when synthloom's verifier accepts its final answer, else 0.0.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from synthloom.verify.rewards import completion_text, score

DATA_FILE = "train.jsonl"


def reward(completion: Any, answer: str, task: str = "", **kwargs: Any) -> float:
    """verifiers' reward-function shape: the rollout's completion and the row's columns."""
    return score(task, completion_text(completion), answer)


def load_rows(path: str | Path | None = None) -> list[dict[str, Any]]:
    path = Path(path) if path else Path(__file__).with_name(DATA_FILE)
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


class SynthloomEnvironment:
    """The environment's parts without the verifiers package. (A plain class: a module loaded
    by its path, not registered in sys.modules, cannot hold a dataclass.)"""

    def __init__(self, dataset: list[dict[str, Any]]) -> None:
        self.dataset = dataset
        self.rubric = [reward]

    def score(self, completion: Any, row: dict[str, Any]) -> float:
        return sum(f(completion, answer=row["answer"], task=row["task"]) for f in self.rubric)


def load_environment(data_path: str | None = None, **kwargs: Any) -> Any:
    rows = load_rows(data_path)
    try:
        import verifiers as vf
        from datasets import Dataset

        single_turn, rubric = vf.SingleTurnEnv, vf.Rubric
    except (ImportError, AttributeError):  # no verifiers, or its v1 API without these
        return SynthloomEnvironment(dataset=rows)
    data = Dataset.from_list([{k: r[k] for k in ("prompt", "answer", "task", "info")}
                              for r in rows])
    return single_turn(dataset=data, rubric=rubric(funcs=[reward], weights=[1.0]), **kwargs)
