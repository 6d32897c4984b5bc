"""The review web app: Starlette + server-rendered Jinja2 pages (autoescape on), no CDN.

Pages: ``/`` (overview: funnel, per-step counts, per-model cost — the report's own tables),
``/records/{file}`` (records / failed / dropped, paginated and filtered in SQLite), and
``/row/{n}`` (one row: every column, reasoning apart, provenance back to the source chunk,
the prompt). ``POST /row/{n}/decide`` stores a decision (accept / reject / edit + note).

Every page brings the index up to date first (the run may have been rerun meanwhile). A row
number from a page made before a rerun leads to the same record where the file still holds it
(same id, same content), and otherwise says what became of it (410: regenerated as ..., or
gone) instead of a bare 404; decisions on records a rerun replaced show as superseded.
"""

from __future__ import annotations

import hmac
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from synthloom.core.decisions import STATUSES, Decisions
from synthloom.review.index import FILES, Filters, RunIndex

HERE = Path(__file__).parent
PER_PAGE = 50
#: Keys whose string values are secrets (API keys, tokens, passwords): never shown.
SECRET_KEY = re.compile(r"(api[_-]?key|secret|password|passwd|authorization|bearer|"
                        r"(^|_)token$|access[_-]?key|credential)", re.I)
#: Values that look like keys whatever their column (OpenAI/HF/Anthropic/GitHub/AWS shapes).
SECRET_VALUE = re.compile(r"\b(sk-[A-Za-z0-9_\-]{16,}|hf_[A-Za-z0-9]{20,}|gh[pous]_[A-Za-z0-9]{20,}"
                          r"|AKIA[0-9A-Z]{16}|xox[bp]-[A-Za-z0-9\-]{10,})")
REDACTED = "•••redacted•••"
LABELS = {"records": "records", "failed": "failed", "dropped": "dropped"}


def redact(value: Any, key: str = "") -> Any:
    """A copy with secret-looking fields and values replaced (records, summaries, recipes)."""
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, key) for v in value]
    if isinstance(value, str):
        if key and SECRET_KEY.search(key):
            return REDACTED
        return SECRET_VALUE.sub(REDACTED, value)
    return value


def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["pretty"] = lambda v: json.dumps(v, indent=2, ensure_ascii=False, default=str)
    env.globals["labels"] = LABELS
    return env


class ReviewApp:
    """State of one served run folder: its index, decisions and summary."""

    def __init__(self, run_dir: str | Path, price_per_1k: float = 0.0) -> None:
        self.run_dir = Path(run_dir)
        self.price_per_1k = price_per_1k
        self._overview: tuple[Any, ...] | None = None
        if not self.run_dir.is_dir():
            raise FileNotFoundError(f"{self.run_dir}: no such run folder")
        self.index = RunIndex(self.run_dir)
        self.index.refresh()
        self.decisions = Decisions(self.run_dir)
        self.env = _env()

    def render(self, name: str, **context: Any) -> HTMLResponse:
        context.setdefault("run_dir", str(self.run_dir))
        context.setdefault("counts", {k: self.index.count(k) for k in self.index.files})
        return HTMLResponse(self.env.get_template(name).render(**context))

    # --- pages ---------------------------------------------------------------------------------

    async def overview(self, request: Request) -> Response:
        self.index.refresh()
        summary, funnel, tokens = self._overview_parts()
        return self.render("overview.html", summary=summary, funnel=funnel, tokens=tokens,
                           decisions=self.decisions.counts(), bad=self.decisions.bad_lines,
                           files=self.index.files, superseded=self._superseded())

    def _superseded(self, status: str | None = None, most: int = 50) -> list[dict[str, Any]]:
        """Decisions (``status``, else accepted and rejected) on records no run file holds
        now: a rerun replaced them (``--regenerate rejected`` gives new ids). Each with the
        records made since by the same step from the same input (its new samples)."""
        statuses = [status] if status else ["accepted", "rejected"]
        ids = [i for s in statuses for i in self.decisions.ids(s)]
        out = []
        for rid in self.index.missing(ids):
            d = self.decisions.get(rid)
            assert d is not None
            out.append({"id": rid, "status": d.status, "step": d.step,
                        "now": self.index.successors(d.step, d.parent, rid)[:5]})
        return out[:most]

    def _gone(self, n: int) -> tuple[int, Any] | Response:
        """Row ``n`` now: ``(n, index.get(n))``, with another row number where the file was
        indexed again and still holds the same record; else the response that says what
        happened (404: never a row; 410: a rerun replaced the record, and by what)."""
        got = self.index.get(n)
        if got is not None:
            return n, got
        stale = self.index.stale_row(n)
        if stale is None:
            return PlainTextResponse(f"no row {n}", status_code=404)
        for key, m in self.index.find(stale["id"]) if stale["id"] else []:
            again = self.index.get(m) if key == stale["file"] else None
            if again is not None:
                return m, again
        file = self.index.files.get(stale["file"], stale["file"])
        lines = [f"Row {n} was record {stale['id'] or '(no id)'}"
                 + (f" (step {stale['step']})" if stale.get("step") else "")
                 + f" of {file}. {file} was rewritten since (a rerun), and no longer holds it."]
        for m, rid in self.index.successors(stale.get("step"), stale.get("parent"),
                                            stale["id"] or ""):
            got = self.index.get(m)
            meta = (got[2].get("_meta") or {}) if got and isinstance(got[2], dict) else {}
            how = "regenerated" if meta.get("resample") else "replaced"
            lines.append(f"It was {how}: record {rid} is row {m} (/row/{m}).")
        return PlainTextResponse("\n".join(lines) + "\n", status_code=410)

    def _overview_parts(self) -> tuple[dict[str, Any], Markup, Markup]:
        """The summary and the report's own funnel and cost tables (they escape every value
        themselves), drawn again only when summary.json changes (the charts take ~100 ms)."""
        from synthloom.export.report import _funnel, _tokens, load_summary

        path = self.run_dir / "summary.json"
        stamp = path.stat().st_mtime_ns if path.is_file() else None
        if self._overview is None or self._overview[0] != stamp:
            summary = redact(load_summary(self.run_dir))
            self._overview = (stamp, summary, Markup(_funnel(summary)),
                              Markup(_tokens(summary, self.price_per_1k)))
        return self._overview[1:]

    async def records(self, request: Request) -> Response:
        key = request.path_params["file"]
        if key not in self.index.files:
            return PlainTextResponse(f"no such file {key!r}", status_code=404)
        self.index.refresh()
        q = request.query_params
        try:
            filters = Filters(step=q.get("step") or None, topic=q.get("topic") or None,
                              reason=q.get("reason") or None, q=q.get("q") or None,
                              score_min=_float(q.get("score_min")),
                              score_max=_float(q.get("score_max")))
            page_no = int(q.get("page") or 1)
        except ValueError as exc:
            return PlainTextResponse(f"bad filter: {exc}", status_code=400)
        decision = q.get("decision") or ""
        if decision == "pending":  # not reviewed yet, or set back to undecided
            filters.exclude_ids = self.decisions.ids("accepted") + self.decisions.ids("rejected")
        elif decision in STATUSES:
            filters.ids = self.decisions.ids(decision)
        superseded = len(self.index.missing(filters.ids)) if decision in ("accepted",
                                                                          "rejected") else 0
        page = self.index.page(key, filters, page_no, PER_PAGE)
        for row in page.rows:
            d = self.decisions.get(row["id"] or "")
            row["decision"] = d.status if d else ""
            row["note"] = d.note if d else ""
            row["preview"] = redact(row["preview"] or "")
        base = {k: v for k, v in q.items() if k != "page" and v}
        return self.render(
            "records.html", key=key, file=self.index.files[key], page=page, query=base,
            steps=self.index.facets(key, "step"), topics=self.index.facets(key, "topic"),
            reasons=self.index.facets(key, "reason", 50), statuses=STATUSES,
            superseded=superseded, decision=decision,
            link=lambda n: "?" + urlencode({**base, "page": n}),
            here=request.url.path + ("?" + request.url.query if request.url.query else ""))

    async def row(self, request: Request) -> Response:
        n = request.path_params["n"]
        self.index.refresh()
        found = self._gone(n)
        if isinstance(found, Response):
            return found
        if found[0] != n:  # the same record, at its row in the file as it is now
            return RedirectResponse(f"/row/{found[0]}", status_code=303)
        key, line, row = found[1]
        if isinstance(row, str):  # a line that is not JSON: say which and why
            return self.render("row.html", key=key, line=line, n=n, error=row, record={},
                               wrapper={}, columns=[], reasoning=[], meta={}, chain=[],
                               source=None, prompt=None, decision=None, editable=[], turns=None,
                               file=self.index.files[key], before=None, after=None)
        from synthloom.review.conversation import conversation
        from synthloom.review.provenance import chain, prompt_of, source_view

        row = redact(row)
        record = row.get("record") if key in FILES and isinstance(row.get("record"), dict) \
            else ({} if key in FILES else row)
        wrapper = {k: v for k, v in row.items() if k != "record"} if key in FILES else {}
        meta = record.get("_meta") or {}
        columns = [(k, v) for k, v in record.items() if k != "_meta"
                   and not k.endswith("reasoning")]
        reasoning = [(k, v) for k, v in record.items() if k.endswith("reasoning") and v]
        # A redacted value is not offered for editing: posting the form back would write the
        # redaction mark over the real value.
        editable = [(k, v) for k, v in columns if isinstance(v, str) and REDACTED not in v]
        d = self.decisions.get(meta.get("id", "")) if meta else None
        before, after = self.index.neighbours(key, n)
        return self.render(
            "row.html", key=key, line=line, n=n, error=None, record=record, wrapper=wrapper,
            before=before, after=after,
            columns=columns, reasoning=reasoning, meta=meta, file=self.index.files[key],
            chain=chain(self.index, record), source=source_view(self.run_dir, record),
            prompt=prompt_of(self.run_dir, record), decision=d, editable=editable,
            turns=conversation(record) if record else None)

    async def decide(self, request: Request) -> Response:
        if not _same_origin(request):
            return PlainTextResponse("cross-origin form refused", status_code=403)
        n = request.path_params["n"]
        self.index.refresh()
        found = self._gone(n)
        if isinstance(found, Response):
            if found.status_code == 410:  # say why nothing was decided
                return PlainTextResponse(b"Not decided. " + bytes(found.body),
                                         status_code=410)
            return found
        n, got = found  # a page made before a rerun: the same record, at its row now
        if isinstance(got[2], str):
            return PlainTextResponse(f"no record at row {n}", status_code=404)
        key, _, row = got
        record = row.get("record") if key in FILES else row
        if not isinstance(record, dict) or not (record.get("_meta") or {}).get("id"):
            return PlainTextResponse("this row has no record to decide on", status_code=400)
        form = await request.form()
        status = str(form.get("status", ""))
        if status not in STATUSES:
            return PlainTextResponse(f"decision {status!r}: one of {STATUSES}", status_code=400)
        edits = {}
        for name, value in form.multi_items():
            col = name[5:] if name.startswith("edit:") else None
            # Browsers send a textarea's line breaks as CRLF: compare what the user typed.
            typed = str(value).replace("\r\n", "\n")
            if col and isinstance(record.get(col), str) and typed != record[col] \
                    and redact(record[col], col) == record[col]:
                edits[col] = typed
        self.decisions.decide(record, status, str(form.get("note", "")), edits)
        after = self.index.neighbours(key, n)[1] if form.get("then_next") else None
        return RedirectResponse(f"/row/{after if after is not None else n}", status_code=303)

    async def decide_many(self, request: Request) -> Response:
        """The records table's bulk action: one decision (and note) for the ticked rows."""
        if not _same_origin(request):
            return PlainTextResponse("cross-origin form refused", status_code=403)
        key = request.path_params["file"]
        if key not in self.index.files:
            return PlainTextResponse(f"no such file {key!r}", status_code=404)
        form = await request.form()
        status = str(form.get("status", ""))
        if status not in STATUSES:
            return PlainTextResponse(f"decision {status!r}: one of {STATUSES}", status_code=400)
        try:
            rows = [int(str(v)) for v in form.getlist("n")]
        except ValueError:
            return PlainTextResponse("row numbers must be integers", status_code=400)
        note = str(form.get("note", ""))
        self.index.refresh()
        for n in rows:
            found = self._gone(n)
            # A record a rerun replaced is not decided for its successor (another text).
            got = None if isinstance(found, Response) else found[1]
            if got is None or got[0] != key or isinstance(got[2], str):
                continue  # a row of another file, or not a record: nothing to decide
            record = got[2].get("record") if key in FILES else got[2]
            if isinstance(record, dict) and (record.get("_meta") or {}).get("id"):
                self.decisions.decide(record, status, note)
        back = str(form.get("back", ""))
        # Only back to a records page of this app (never an open redirect).
        target = back if back.startswith(f"/records/{key}") else f"/records/{key}"
        return RedirectResponse(target, status_code=303)


def _float(value: str | None) -> float | None:
    return float(value) if value not in (None, "") else None


def _same_origin(request: Request) -> bool:
    """A form post from another site (a page the reviewer has open) is refused."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return origin.split("://", 1)[-1] == request.headers.get("host")


class TokenGate:
    """Access token, as Jupyter does it: the URL that ``synthloom review`` prints carries
    ``?token=``; the first visit trades it for an HttpOnly, SameSite=Strict cookie and is
    redirected to the same page without it. Anything else gets 401: another user of the
    machine (or of the network, with ``--host``) cannot read the records or decide on them."""

    def __init__(self, app: Any, token: str, cookie: str) -> None:
        self.app, self.token, self.cookie = app, token, cookie

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        given = request.query_params.get("token")
        if given is not None and hmac.compare_digest(given, self.token):
            rest = urlencode([(k, v) for k, v in request.query_params.multi_items()
                              if k != "token"])
            response: Response = RedirectResponse(
                request.url.path + (f"?{rest}" if rest else ""), status_code=303)
            response.set_cookie(self.cookie, self.token, httponly=True, samesite="strict")
        elif hmac.compare_digest(request.cookies.get(self.cookie, ""), self.token):
            await self.app(scope, receive, send)
            return
        else:
            response = PlainTextResponse(
                "synthloom review: open the URL that `synthloom review` printed (it carries "
                "the access token)", status_code=401)
        await response(scope, receive, send)


def create_app(run_dir: str | Path, allowed_hosts: list[str] | None = None,
               price_per_1k: float = 0.0, token: str | None = None,
               cookie: str = "synthloom_review") -> Starlette:
    """The app; with ``token``, every request needs it (``TokenGate``)."""
    state = ReviewApp(run_dir, price_per_1k)
    routes = [
        Route("/", state.overview),
        Route("/records/{file}", state.records),
        Route("/row/{n:int}", state.row),
        Route("/row/{n:int}/decide", state.decide, methods=["POST"]),
        Route("/records/{file}/decide", state.decide_many, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    # Host header check: a DNS-rebinding page cannot reach the app under another name.
    hosts = allowed_hosts or ["127.0.0.1", "localhost", "testserver"]
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=hosts)]
    if token is not None:
        middleware.append(Middleware(TokenGate, token=token, cookie=cookie))
    app = Starlette(routes=routes, middleware=middleware)
    app.state.review = state
    return app
