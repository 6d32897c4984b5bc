"""The ``gym_tasks`` source and the ``verify_gym`` step (reasoning-gym, extra ``gym``).

``gym_tasks`` reads any reasoning-gym dataset by name with its config (``datasets:
{sudoku: {min_empty: 30}, puzzle24: {}}``, or a list of names), ``count`` items each,
interleaved; every record carries what regenerates its entry (see
:mod:`synthloom.verify.gym`). ``verify_gym`` scores a column (the stored ``answer`` by default,
or a model's reply) with the dataset's own scorer; only a score of 1.0 is verified.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import field_validator

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.errors import SynthloomError
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import MapStep, SourceFailure, SourceStep, StepConfig
from synthloom.verify.gym import dataset, grade, gym_items, require_gym


class GymTasksConfig(StepConfig):
    #: Dataset name -> its reasoning-gym config ({} for the defaults), a list of names, or a
    #: comma-separated string.
    datasets: dict[str, dict[str, Any]] | list[str] | str
    #: Items per dataset.
    count: int = 100
    #: Seed of reasoning-gym's generators (the same seed: the same items).
    seed: int = 0

    @field_validator("datasets")
    @classmethod
    def _datasets(cls, value: Any) -> Any:
        if not normalize_datasets(value):
            raise ValueError("datasets: name at least one reasoning-gym dataset")
        return value

    @field_validator("count")
    @classmethod
    def _count(cls, value: int) -> int:
        if value < 0:
            raise ValueError("count must be >= 0")
        return value


def normalize_datasets(value: dict[str, dict[str, Any]] | list[str] | str
                       ) -> dict[str, dict[str, Any]]:
    if isinstance(value, str):
        return {v.strip(): {} for v in value.split(",") if v.strip()}
    if isinstance(value, list):
        return {str(v).strip(): {} for v in value}
    return {str(k): dict(v or {}) for k, v in value.items()}


@register_step
class GymTasks(SourceStep):
    """``count`` items per reasoning-gym dataset: question, answer, task (``gym/<name>``) and
    the ``gym_*`` columns that regenerate the entry. A dataset that cannot be built (unknown
    name, bad config) is one counted source failure."""

    type_name = "gym_tasks"
    Config = GymTasksConfig
    config: GymTasksConfig

    def read(self, ctx: RunContext) -> Iterator[dict[str, Any] | SourceFailure]:
        cfg = self.config
        require_gym()
        streams = []
        for name, config in normalize_datasets(cfg.datasets).items():
            try:
                dataset(name, config, seed=cfg.seed, size=cfg.count)
            except SynthloomError as exc:
                yield SourceFailure(where=f"reasoning-gym {name}", error_class="BadDataset",
                                    message=str(exc))
                continue
            streams.append(gym_items(name, config, count=cfg.count, seed=cfg.seed))
        # Interleaved (item 0 of every dataset, then item 1, ...): --limit keeps a mix.
        while streams:
            for stream in list(streams):
                record = next(stream, None)
                if record is None:
                    streams.remove(stream)
                else:
                    yield record


class VerifyGymConfig(StepConfig):
    #: Column to score: the stored reference ``answer``, or a model's reply.
    column: str = "answer"
    #: Keep items that do not score 1.0 (``gym_verified: false``) instead of dropping them.
    keep_incorrect: bool = False


@register_step
class VerifyGym(MapStep):
    """Scores a column (the stored ``answer``, or a model's reply) with the reasoning-gym
    dataset's scorer; only 1.0 is verified (``gym_score`` kept), the rest dropped."""

    type_name = "verify_gym"
    Config = VerifyGymConfig
    # Scorers are quick; a process pool would import reasoning-gym (seconds) per worker.
    cpu_bound = False
    config: VerifyGymConfig

    def reads(self) -> list[str]:
        return [self.config.column, "gym_dataset", "gym_config", "gym_seed", "gym_size",
                "gym_index"]

    def process(self, record: dict[str, Any], ctx: ItemContext) -> ItemResult | Output:
        cfg = self.config
        value = record.get(cfg.column)
        if value is None:
            score, reason = 0.0, ("reasoning-gym stores no reference answer for this item"
                                  if cfg.column == "answer" else "no answer")
        else:
            score, reason = grade(record, str(value))
        if reason is not None and not cfg.keep_incorrect:
            return ItemResult.drop(f"not verified: {reason}")
        return Output(columns={"verified": reason is None, "gym_score": score})
