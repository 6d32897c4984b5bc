"""Review loop: a local web UI over a run folder (``synthloom review RUN_DIR``).

``index`` keeps a SQLite index of the run's JSONL files (byte offsets + FTS5), ``app`` serves
the pages (Starlette + Jinja2, extra ``review``). The accept / reject / edit decisions
(``RUN/review/decisions.jsonl``) are read and written by :mod:`synthloom.core.decisions`: a
run-folder file that ``export --reviewed`` and ``run --regenerate rejected`` read too, so it
lives below all three (docs/architecture.md, "Layers and imports").
"""
