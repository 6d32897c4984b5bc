"""``drop_rejected``: drops records a method step marked as rejected, with the mark as reason.

Steps that judge things which are not their own inputs (candidates a global step generated,
evolutions an expand step tried, instances of one call) cannot drop them themselves: they emit
every candidate with a ``reject_reason`` column (None when usable), and this filter turns the
marks into accounted drops. Used by self-instruct, evol-instruct and targen.
"""

from __future__ import annotations

from typing import Any

from synthloom.core.context import ItemContext
from synthloom.core.registry import register_step
from synthloom.core.steps import StepConfig
from synthloom.quality.filters import ColumnFilter


class RejectConfig(StepConfig):
    #: The column holding the reason (None or "" keeps the record).
    column: str = "reject_reason"


@register_step
class DropRejected(ColumnFilter):
    type_name = "drop_rejected"
    Config = RejectConfig
    config: RejectConfig

    def process(self, record: dict[str, Any], ctx: ItemContext) -> str | None:
        reason = record.get(self.config.column)
        return str(reason) if reason else None
