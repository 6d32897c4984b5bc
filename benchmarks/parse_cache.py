"""The ``documents`` source's parse cache: reading a corpus cold (parse + cache) vs warm.

    python benchmarks/parse_cache.py                 # 10,000 HTML pages
    python benchmarks/parse_cache.py --quick         # 2,000
    python benchmarks/parse_cache.py --docs N --html-share 0.3 --baseline --touch 0.01

The corpus is the flagship benchmarks' synthetic web-like one (tests/support/scale_inputs.py
``write_documents``: titled HTML pages with paragraphs and an FAQ list; ``--html-share`` 1.0 by
default, the rest Markdown and text). Its files are dated a minute back: the cache skips files
modified in the last two seconds (sources/parse_cache.py ``RACY_NS``), and a corpus being
written is not what a resume reads.

Each read is ``Documents.read`` in this process (walk, parse or cache lookup, the document
columns and ``doc_id``): what a run or a resume spends on the source before its first batch
leaves. Printed, one JSON object:

- ``cold_s``: read with an empty cache (every file parsed and written, group commits);
- ``warm_s``: the same read again (every file from the cache), ``cold_over_warm``;
- ``baseline_s`` with ``--baseline``: ``cache: false`` (the cost of the writes = cold - baseline);
- ``touched_s`` with ``--touch F``: a share F of the files re-dated, then read (those re-parsed);
- ``same_records``: the warm read's items equal the cold read's (and the baseline's);
- ``cache_mb`` (the database), ``warm_ms_per_doc`` and ``warm_1m_s``/``cold_1m_s``: linear
  extrapolations to 1,000,000 documents on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def timed_read(corpus: Path, run_dir: Path, **config: Any) -> tuple[float, list[Any], Any]:
    from synthloom.core.context import RunContext
    from synthloom.sources.documents import Documents

    source = Documents(name="docs", path=str(corpus), **config)
    start = time.perf_counter()
    items = list(source.read(RunContext(run_dir=run_dir)))
    return time.perf_counter() - start, items, source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="2,000 documents")
    parser.add_argument("--html-share", type=float, default=1.0)
    parser.add_argument("--baseline", action="store_true", help="also read with cache: false")
    parser.add_argument("--touch", type=float, default=0.0,
                        help="then re-date this share of the files and read again")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    n = 2_000 if args.quick else args.docs
    sys.path.insert(0, str(ROOT))
    from tests.support.scale_inputs import write_documents

    from synthloom.sources.parse_cache import DB_NAME
    from synthloom.sources.text_readers import read_html

    with tempfile.TemporaryDirectory(prefix="parse_cache_") as work:
        corpus = write_documents(Path(work) / "corpus", n, seed=args.seed,
                                 html_share=args.html_share)
        files = sorted(corpus.iterdir())
        past = time.time() - 60
        for path in files:
            os.utime(path, (past, past))
        pages = [p for p in files if p.suffix == ".html"]
        if pages:
            read_html(pages[0].read_bytes())  # trafilatura's import and first-call setup
        run = Path(work) / "run"
        result: dict[str, Any] = {"docs": n, "files": len(files),
                                  "html": sum(p.suffix == ".html" for p in files)}
        if args.baseline:
            result["baseline_s"], baseline, _ = timed_read(corpus, run, cache=False)
        result["cold_s"], cold, _ = timed_read(corpus, run)
        result["warm_s"], warm, source = timed_read(corpus, run)
        result["warm_hits"] = source.cache_hits
        result["cold_over_warm"] = round(result["cold_s"] / result["warm_s"], 1)
        same = warm == cold and (not args.baseline or baseline == cold)
        if args.touch:
            chosen = random.Random(args.seed).sample(files, max(1, int(len(files) * args.touch)))
            for path in chosen:
                os.utime(path, (past + 30, past + 30))
            result["touched"] = len(chosen)
            result["touched_s"], touched, source = timed_read(corpus, run)
            result["touched_reparsed"] = source.cache_misses
            same = same and touched == cold
        result["same_records"] = same
        result["cache_mb"] = round(sum(p.stat().st_size for p in run.glob(f"{DB_NAME}*"))
                                   / 2**20, 1)
        result["warm_ms_per_doc"] = round(1000 * result["warm_s"] / n, 3)
        result["warm_1m_s"] = round(result["warm_s"] * 1_000_000 / n)
        result["cold_1m_s"] = round(result["cold_s"] * 1_000_000 / n)
        for key in ("baseline_s", "cold_s", "warm_s", "touched_s"):
            if key in result:
                result[key] = round(result[key], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
