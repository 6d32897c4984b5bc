"""Review loop: a local web UI over a run folder (``synthloom review RUN_DIR``).

``index`` keeps a SQLite index of the run's JSONL files (byte offsets + FTS5), ``decisions``
stores accept / reject / edit decisions in ``RUN/review/decisions.jsonl``, ``app`` serves the
pages (Starlette + Jinja2, extra ``review``), ``resample`` feeds ``--regenerate rejected``.
"""
