"""Records spooled to disk (core/spool.py): what the Ray driver keeps instead of lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthloom.core.records import make_record, rid
from synthloom.core.scaleout import PreparesInParallel, ReadsInParts
from synthloom.core.spool import spool
from synthloom.quality.topics import ClusterTopics, SelectPerTopic, SemanticCommunities
from synthloom.sources.documents import Documents
from synthloom.sources.files import TextFiles


def test_a_spooled_sequence_reads_back_every_record_by_position(tmp_path: Path) -> None:
    records = [make_record({"text": f"record {i}", "n": i, "nested": {"é": [i]}}, step="s")
               for i in range(70_000)]  # more than one offsets chunk
    seq = spool(tmp_path / "s.jsonl", records)
    assert len(seq) == 70_000
    assert seq[0] == records[0] and seq[69_999] == records[-1] and seq[-2] == records[-2]
    assert seq[65_535:65_538] == records[65_535:65_538]
    assert [rid(r) for r in seq] == [rid(r) for r in records]
    with pytest.raises(IndexError):
        seq[70_000]
    seq.close()


def test_an_empty_spool() -> None:
    seq = spool(Path(__import__("tempfile").mkdtemp()) / "e.jsonl", [])
    assert len(seq) == 0 and list(seq) == []


def test_the_steps_that_offer_parallel_work_say_so() -> None:
    assert isinstance(Documents(name="d", path="x"), ReadsInParts)
    assert not isinstance(TextFiles(name="t", path="x"), ReadsInParts)
    assert isinstance(ClusterTopics(name="c", column="q"), PreparesInParallel)
    assert isinstance(SemanticCommunities(name="c", column="q"), PreparesInParallel)
    assert not isinstance(SelectPerTopic(name="s", score_column="x", target=3), PreparesInParallel)


def test_documents_read_in_parts_equal_a_serial_read(tmp_path: Path) -> None:
    from synthloom.core.context import RunContext

    for i in range(5):
        (tmp_path / f"{i}.txt").write_text(f"Title {i}\n\nbody {i}")
    (tmp_path / "empty.txt").write_text("  ")
    step = Documents(name="d", path=str(tmp_path))
    ctx = RunContext(run_dir=tmp_path)
    serial = list(step.read(ctx))
    in_parts = [item for part in step.parts(ctx) for item in step.read_part(part, ctx)]
    assert in_parts == serial and len(serial) == 6
