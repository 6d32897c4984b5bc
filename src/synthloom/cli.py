"""The command line: ``synthloom run``, ``synthloom recipes``, ``synthloom --version``.

Errors print as one line and a non-zero exit code; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import json
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, get_type_hints

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from synthloom import __version__
from synthloom.core.accounting import RunSummary, StepStats
from synthloom.core.errors import SynthloomError
from synthloom.core.models import RunModelOptions
from synthloom.export import registry as export_formats  # --format's help lists the formats

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Verified, diverse, deduplicated synthetic training data for LLMs.")
console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        print(f"synthloom {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """synthloom: turn documents, seeds and tools into training data."""


def _parse_sets(values: list[str]) -> dict[str, str]:
    overrides = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SynthloomError(f"--set {item!r}: expected key=value")
        overrides[key.strip()] = value
    return overrides


def _declared_options(cls: type, into: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """One typer option per field of the dataclass ``cls`` that has help metadata
    (``core.models.option``), in place of the command's parameter ``into``, which receives them
    as one ``cls``: the options are declared once, on the class the Python API uses."""
    hints = get_type_hints(cls)
    declared = [f for f in dataclasses.fields(cls) if "help" in f.metadata]

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(fn, eval_str=True)
        params = list(signature.parameters.values())
        at = [p.name for p in params].index(into)
        added = [inspect.Parameter(
            f.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=f.default,
            annotation=Annotated[f.metadata.get("cli_type") or hints[f.name],
                                 typer.Option(help=f.metadata["help"])]) for f in declared]

        @functools.wraps(fn)
        def command(*args: Any, **kwargs: Any) -> Any:
            values = {f.name: kwargs.pop(f.name) for f in declared}
            return fn(*args, **kwargs, **{into: cls(**values)})

        command.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=params[:at] + added + params[at + 1:])
        return command

    return decorate


@app.command()
@_declared_options(RunModelOptions, into="models")
def run(
    recipe: Annotated[str, typer.Argument(help="A shipped recipe name or a path to a .yaml file.")],
    out: Annotated[Path | None, typer.Option(
        help="Run folder (default: synthloom-runs/RECIPE). Same folder = resume.")] = None,
    limit: Annotated[int | None, typer.Option(help="Read at most N items per source.")] = None,
    # --backend, --model, --api-key-env, --concurrency, --rpm, --tpm, --budget-tokens:
    models: RunModelOptions | None = None,
    model_for: Annotated[list[str] | None, typer.Option(
        "--model-for", help="NAME=SPEC: the backend of a named model of the recipe's models: "
        "(repeatable), e.g. judge=openai:http://127.0.0.1:8001/v1 or "
        "'judge={backend: \"openai:http://127.0.0.1:8001/v1\", model: qwen}'.")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="param=value, or step.key=value (repeatable).")] = None,
    batch_size: Annotated[int, typer.Option(help="Records per batch.")] = 32,
    executor: Annotated[str, typer.Option(
        help="local | ray (Ray Data; pip install 'synthloom[ray]').")] = "local",
    ray_address: Annotated[str | None, typer.Option(
        help="Ray cluster address (default: a local Ray for this run).")] = None,
    ray_actors: Annotated[int, typer.Option(help="Ray actors per streaming step.")] = 1,
    regenerate: Annotated[str | None, typer.Option(
        help="rejected: new samples for the records rejected in `synthloom review OUT` "
        "(everything else from the cache).")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress display.")] = False,
    no_report: Annotated[bool, typer.Option("--no-report", help="Skip OUT/report.html.")] = False,
    debug: Annotated[bool, typer.Option(help="Show tracebacks.")] = False,
) -> None:
    """Run a recipe; records go to OUT/data.jsonl, accounting to OUT/summary.json.

    Exit codes (summary.json "status" in brackets): 0 finished [ok], or finished with some
    failed items [partial]; 1 an unexpected error (a bug: --debug shows it); 2 an error named in
    one line: bad recipe or option, server unreachable, folder in use by another run, run.db
    unusable [failed]; 3 stopped by --budget-tokens [stopped]; 4 every item failed, nothing came
    out [failed]; 130 Ctrl-C or SIGTERM [interrupted]. Outputs (data.jsonl, failed.jsonl,
    dropped.jsonl) are replaced only by a run that finishes (ok, partial, stopped, or every item
    failed); after Ctrl-C or a fatal error the previous ones stay and this run's rows are left
    in *.partial files.
    """
    from synthloom.api import RunOptions, run_recipe
    from synthloom.core.recipe import Recipe

    def go() -> RunSummary:
        from synthloom.core.models import parse_model_for

        loaded = Recipe.load(recipe, _parse_sets(set_ or []),
                             models=parse_model_for(model_for or []))
        folder = out or Path("synthloom-runs") / loaded.name
        display = _Progress(enabled=not quiet and console.is_terminal,
                            inputs={n.name: loaded.inputs_of(n) for n in loaded.nodes},
                            log_lines=not quiet and not console.is_terminal)
        options = RunOptions(
            **(models or RunModelOptions()).model_options(), limit=limit, batch_size=batch_size,
            on_progress=display.update, executor=executor, ray_address=ray_address,
            ray_actors=ray_actors, regenerate=regenerate)
        with display:
            summary = asyncio.run(run_recipe(loaded, folder, options))
        if summary.regenerated is not None:
            _print_regenerated(summary.regenerated)
        _print_summary(summary, folder)
        if not no_report:
            from synthloom.export.report import write_report_after_run

            write_report_after_run(folder, console)
        return summary

    previous = signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    try:
        summary = _guard(go, debug)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if summary.status == "stopped":
        console.print(f"[yellow]stopped: {summary.stopped_reason}[/]; run the same command "
                      "again to continue (finished items are cached)")
        raise typer.Exit(3)
    if summary.status == "failed":
        console.print(f"[red]failed[/]: every item failed; see {out_dir(summary, out)}"
                      "/failed.jsonl for why", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_ALL_FAILED)
    if summary.status == "partial":
        console.print("[yellow]partial[/]: some items failed; see failed.jsonl",
                      highlight=False, soft_wrap=True)


#: ``synthloom run``'s exit code when every item failed (see its help for all codes).
EXIT_ALL_FAILED = 4


def out_dir(summary: RunSummary, out: Path | None) -> Path:
    return out or Path("synthloom-runs") / summary.recipe


def _sigterm_as_interrupt(signum: int, frame: Any) -> None:
    """SIGTERM stops a run as Ctrl-C does: outputs kept, summary.json "interrupted", exit
    130 (without this the process died with no summary at all)."""
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)  # asyncio's handler cancels the run's main task
    else:
        raise KeyboardInterrupt


@app.command()
def recipes() -> None:
    """List the recipes shipped with synthloom."""
    from synthloom.core.recipe import packaged_recipes, recipe_summary

    table = Table(show_header=True, header_style="bold", box=None)
    table.add_column("recipe")
    table.add_column("description")
    for name, path in sorted(packaged_recipes().items()):
        _, description = recipe_summary(path)
        table.add_row(name, description)
    Console().print(table)


@app.command()
def steps(
    name: Annotated[str | None, typer.Argument(
        help="A step type: show its settings (default: list them all).")] = None,
    markdown: Annotated[bool, typer.Option(
        "--markdown", help="Print the list as the Markdown table of docs/steps.md.")] = False,
) -> None:
    """List the step types recipes can use, or one type's settings with their defaults."""
    from synthloom.core.registry import step_type, step_types

    if name is None and markdown:
        print(_steps_markdown(step_types()), end="")
        return
    if name is None:
        table = Table(show_header=True, header_style="bold", box=None)
        for column in ("step type", "kind", "LLM", "what"):
            table.add_column(column)
        for type_name, cls in sorted(step_types().items()):
            table.add_row(type_name, str(cls.kind), "yes" if cls.uses_llm else "",
                          _describe_step(cls))
        Console().print(table)
        return
    cls = _guard(lambda: step_type(name), debug=False)
    console.print(f"[bold]{name}[/] ({cls.kind}{', uses the LLM' if cls.uses_llm else ''}): "
                  f"{_describe_step(cls)}")
    table = Table(show_header=True, header_style="bold", box=None)
    for column in ("setting", "type", "default", "description"):
        table.add_column(column, overflow="fold")
    comments = _field_comments(cls.Config)
    for field_name, field in cls.Config.model_fields.items():
        if field_name in ("name", "input", "context") or (field_name == "model"
                                                          and not cls.uses_llm):
            continue  # wiring, the same on every step (model: only where the step calls one)
        default = "required" if field.is_required() else repr(field.get_default())
        table.add_row(field.alias or field_name, _type_name(field.annotation), default,
                      field.description or comments.get(field_name, ""))
    Console().print(table)


def _steps_markdown(types: dict[str, Any]) -> str:
    """docs/steps.md's table (tests/unit/test_docs.py holds the file to the registry)."""
    lines = ["| step type | kind | LLM | what |", "|---|---|---|---|"]
    for type_name, cls in sorted(types.items()):
        what = _describe_step(cls).replace("|", "\\|")
        lines.append(f"| `{type_name}` | {cls.kind} | {'yes' if cls.uses_llm else ''} | {what} |")
    return "\n".join(lines) + "\n"


def _describe_step(cls: Any) -> str:
    """The class docstring's first paragraph, else its module's (one module, one method)."""
    import inspect
    import sys

    for doc in (cls.__doc__, getattr(sys.modules.get(cls.__module__), "__doc__", None)):
        if doc and doc.strip():
            # A paragraph, not a line: a first line often ends mid-sentence.
            return " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())
    return ""


def _field_comments(config: type) -> dict[str, str]:
    """``#:`` comments above a config's fields, by field name: the description of configs not
    yet written with ``Field(description=...)``. Read from the source of the class and its
    bases (a subclass's comment wins); {} where the source is not available."""
    import ast
    import inspect
    import textwrap

    found: dict[str, str] = {}
    for klass in reversed(config.__mro__):
        try:
            lines, _ = inspect.getsourcelines(klass)
            tree = ast.parse(textwrap.dedent("".join(lines)))
        except (OSError, TypeError, SyntaxError):
            continue  # built-in or generated: no source
        if not tree.body or not isinstance(tree.body[0], ast.ClassDef):
            continue
        text = [line.strip() for line in lines]
        for node in tree.body[0].body:
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                above: list[str] = []
                row = node.lineno - 2  # the line above the field, 0-based
                while row >= 0 and text[row].startswith("#:"):
                    above.insert(0, text[row][2:].strip())
                    row -= 1
                if above:
                    found[node.target.id] = " ".join(above)
    fields = getattr(config, "model_fields", {})
    return {name: text for name, text in found.items() if name in fields}  # not ClassVars


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _guard(fn: Any, debug: bool) -> Any:
    try:
        return fn()
    except SynthloomError as exc:
        if debug:
            raise
        console.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: rerun the same command to resume")
        raise typer.Exit(130) from None
    except Exception as exc:
        if debug:
            raise
        console.print(f"[red]error:[/] {type(exc).__name__}: {exc} "
                      "(run with --debug for the traceback)", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


class _Progress:
    """A live table per step (counts, items/s, ETA, tokens/s), refreshed at most 8 times a
    second; without a terminal (a cluster job's log), one line per step every 30 s."""

    def __init__(self, enabled: bool, inputs: dict[str, str | None] | None = None,
                 log_lines: bool = False, log_every_s: float = 30.0) -> None:
        from synthloom.core.progress import ProgressTracker

        self.enabled = enabled
        self.log_lines = log_lines
        self.log_every_s = log_every_s
        self.tracker = ProgressTracker(inputs or {})
        self._live: Live | None = None
        self._began = time.perf_counter()
        self._last = 0.0
        self._last_log = self._began

    def __enter__(self) -> _Progress:
        if self.enabled:
            self._live = Live(Table(), console=console, refresh_per_second=8, transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)

    def update(self, steps: list[StepStats]) -> None:
        now = time.perf_counter()
        if now - self._last < 0.12 or (self._live is None and not self.log_lines):
            return
        self._last = now
        stages = self.tracker.observe(steps, now)
        if self._live is not None:
            self._live.update(_table(steps, now - self._began, live=True, stages=stages))
        elif now - self._last_log >= self.log_every_s:
            self._last_log = now
            console.print(_progress_line(steps, stages, now - self._began), highlight=False,
                              soft_wrap=True)


def _progress_line(steps: list[StepStats], stages: dict[str, Any], elapsed: float) -> str:
    """One log line: the running stages with counts, rate and ETA."""
    from synthloom.core.progress import format_eta

    parts = []
    for s in steps:
        stage = stages.get(s.name)
        if not s.done and not s.in_ and stage is not None and stage.total:
            # Its whole input is there and nothing is out yet: a global step computing (dedup,
            # clustering) for minutes would otherwise be missing from the line.
            doing = f"computing over {stage.total}" if s.kind == "global" else f"0/{stage.total}"
            parts.append(f"{s.name} {doing}")
            continue
        if s.done or not s.in_:
            continue
        rate = f" {stage.rate:.1f}/s" if stage and stage.rate else ""
        total = f"/{stage.total}" if stage and stage.total is not None else ""
        eta = f" eta {format_eta(stage.eta)}" if stage and stage.eta is not None else ""
        parts.append(f"{s.name} {s.in_}{total}{rate}{eta}")
    done = sum(s.done for s in steps)
    return f"[{elapsed:.0f}s] {done}/{len(steps)} steps done; " + ("; ".join(parts) or "waiting")


def _table(steps: list[StepStats], elapsed: float, live: bool = False,
           stages: dict[str, Any] | None = None) -> Table:
    from synthloom.core.progress import format_eta

    table = Table(box=None, header_style="bold")
    columns = ["step", "kind", "in", "out", "failed", "dropped", "cached", "llm calls", "tokens"]
    columns += ["items/s", "eta", "tok/s"] if live else ["seconds"]
    for col in columns:
        table.add_column(col, justify="left" if col in ("step", "kind") else "right")
    for s in steps:
        tokens = s.prompt_tokens + s.completion_tokens
        mark = "" if s.done or not live else " …"
        row = [s.name + mark, s.kind, str(s.in_), str(s.out), str(s.failed), str(s.dropped),
               str(s.cached), str(s.llm_calls), str(tokens)]
        if live:
            stage = (stages or {}).get(s.name)
            rate = stage.rate if stage is not None else None
            total = stage.total if stage is not None else None
            row[2] = f"{s.in_}/{total}" if total is not None and not s.done else str(s.in_)
            row += [f"{rate:.1f}" if rate else "-",
                    "done" if s.done else format_eta(stage.eta if stage else None),
                    f"{s.completion_tokens / max(elapsed, 1e-9):.1f}"]
        else:
            row.append(f"{s.seconds:.1f}")
        table.add_row(*row)
    return table


def _print_regenerated(regenerated: dict[str, Any]) -> None:
    console.print(f"regenerated {regenerated['items']} rejected records' items"
                  + (f" ({regenerated['earlier']} regenerated by an earlier run)"
                     if regenerated["earlier"] else ""), highlight=False)
    for skip in regenerated["skipped"]:
        console.print(f"[yellow]not regenerated[/] {skip['id']}: {skip['reason']}",
                      highlight=False)


def _print_summary(summary: RunSummary, folder: Path) -> None:
    out = Console()
    out.print(_table(summary.steps, summary.seconds))
    data = summary.to_json()
    out.print(
        f"[bold]{data['records']}[/] records -> {folder / 'data.jsonl'}  "
        f"({data['llm_calls']} LLM calls, {data['cache_hits']} cache hits, "
        f"{data['prompt_tokens']}+{data['completion_tokens']} tokens, {data['seconds']:.1f}s; "
        f"failed {data['failed']}, dropped {data['dropped']})", highlight=False)
    for note in _run_notes(folder):  # facts no count shows (RUN/notes.json via summary.json)
        out.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
    _print_calibration(out, summary, folder)


def _print_calibration(out: Console, summary: RunSummary, folder: Path) -> None:
    """The calibration report (RUN/calibration.json) when this run's band step wrote it."""
    from synthloom.methods.calibrate.report import COLUMNS, read_report

    report = read_report(folder)
    if report is None or report.get("step") not in {s.name for s in summary.steps}:
        return
    for task, rows in report["tasks"].items():
        table = Table(title=f"calibration: {task}", title_justify="left")
        for column in COLUMNS:
            table.add_column(column, justify="right")
        for row in rows:
            table.add_row(*("-" if row[c] is None else
                            f"{row[c]:.2f}" if isinstance(row[c], float) else str(row[c])
                            for c in COLUMNS))
        out.print(table)


def _run_notes(folder: Path) -> list[str]:
    try:
        notes = json.loads((folder / "summary.json").read_text(encoding="utf-8")).get("notes")
    except (OSError, ValueError, AttributeError):
        return []
    return [str(n) for n in notes] if isinstance(notes, list) else []


def _mount_subapps() -> None:
    from synthloom.verify.cli import sandbox_app
    from synthloom.verify.logic.cli import logic_app

    app.add_typer(sandbox_app, name="sandbox")
    app.add_typer(logic_app, name="logic")


_mount_subapps()


@app.command("export")
def export_(
    run_dir: Annotated[Path, typer.Argument(help="A run folder (holds data.jsonl).")],
    format_: Annotated[str | None, typer.Option(
        "--format", help=export_formats.cli_help())] = None,
    for_: Annotated[str | None, typer.Option(
        "--for", help=f"{' | '.join(export_formats.TARGETS)}: refuse a format that trainer "
        "would misread; without --format, choose one it reads.")] = None,
    out: Annotated[Path | None, typer.Option(
        help="Folder for the data, dataset_info.json, README.md (default: RUN_DIR/export/FMT)."
    )] = None,
    file: Annotated[str, typer.Option(help="Run file to export (a sink file, dropped.jsonl, "
                                           "failed.jsonl).")] = "data.jsonl",
    instruction_column: Annotated[str | None, typer.Option(help="Default: found by name.")] = None,
    input_column: Annotated[str | None, typer.Option(help="Alpaca `input` column.")] = None,
    response_column: Annotated[str | None, typer.Option(help="Default: found by name.")] = None,
    messages_column: Annotated[str | None, typer.Option(help="A list of turns.")] = None,
    prompt_column: Annotated[str | None, typer.Option(help="DPO prompt.")] = None,
    chosen_column: Annotated[str | None, typer.Option(help="DPO chosen.")] = None,
    rejected_column: Annotated[str | None, typer.Option(help="DPO rejected.")] = None,
    reasoning_column: Annotated[str | None, typer.Option(
        help="Default: RESPONSE_reasoning.")] = None,
    system: Annotated[str | None, typer.Option(help="System prompt text for every row.")] = None,
    system_column: Annotated[str | None, typer.Option(
        help="Per-row system prompt: a column, or a dotted path (system_prompt.text).")] = None,
    reasoning: Annotated[str, typer.Option(
        help="auto (think-tags in chat formats, field in jsonl/parquet/hf) | field | "
        "think-tags | drop")] = "auto",
    meta: Annotated[bool, typer.Option(help="Keep provenance (_meta / id).")] = True,
    name: Annotated[str | None, typer.Option(help="Dataset name (default: recipe).")] = None,
    reviewed: Annotated[str | None, typer.Option(
        help="accepted | rejected | pending: only the records with that decision from "
        "`synthloom review` (edited values applied).")] = None,
    push_to_hub: Annotated[str | None, typer.Option(
        help="Also upload to this Hub dataset repo (needs a token).")] = None,
    token_env: Annotated[str, typer.Option(help="Variable holding the Hub token.")] = "HF_TOKEN",
    private: Annotated[bool, typer.Option(help="Hub repo visibility.")] = True,
    force: Annotated[bool, typer.Option(
        help="Export even a run that is interrupted, failed, or still running (refused "
        "otherwise: its data.jsonl is not that run's final output).")] = False,
    debug: Annotated[bool, typer.Option(help="Show tracebacks.")] = False,
) -> None:
    """Export a run's records to a training format, with a dataset card.

    Refused (exit 2, the status named) when the run folder's last run was interrupted or
    failed, or a run holds its lock now, unless --force; a partial or stopped run is exported
    with a warning."""
    from synthloom.export.formats import ColumnMap, ExportOptions, export, hub_token
    from synthloom.export.formats import push_to_hub as push

    columns = ColumnMap(instruction=instruction_column, input=input_column,
                        response=response_column, messages=messages_column,
                        prompt=prompt_column, chosen=chosen_column, rejected=rejected_column,
                        reasoning=reasoning_column, system=system, system_column=system_column)
    options = ExportOptions(format=format_ or "", columns=columns, reasoning=reasoning,
                            meta=meta, file=file, name=name, reviewed=reviewed, force=force,
                            target=for_)
    out = out or run_dir / "export" / (format_ or for_ or "jsonl")
    if push_to_hub:
        _guard(lambda: hub_token(token_env), debug)  # fail before writing anything
    result = _guard(lambda: export(run_dir, out, options), debug)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    skipped = "; ".join(f"{n}x {why}" for why, n in result.skipped.most_common())
    if result.reviewed:
        r = result.reviewed
        for line in r["bad_lines"]:
            console.print(f"[yellow]skipped[/] {line}", highlight=False)
        Console().print(f"reviewed: {r['kept']} of {r['of']} records {r['status']} "
                        f"({r['edited']} edited) -> {run_dir / r['file']}", highlight=False)
    Console().print(f"[bold]{result.rows}[/] rows ({result.format}) -> {result.data_path}"
                    + (f"  (skipped {sum(result.skipped.values())}: {skipped})" if skipped
                       else ""), highlight=False)
    readers = export_formats.get_format(result.format).readers
    Console().print(f"read by: {readers}", highlight=False, soft_wrap=True)
    if push_to_hub:
        url = _guard(lambda: push(out, result.format, push_to_hub, token_env, private,
                                  result.data_path), debug)
        Console().print(f"pushed -> {url}", highlight=False)


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run folder.")],
    out: Annotated[Path | None, typer.Option(help="Default: RUN_DIR/report.html.")] = None,
    price_per_1k: Annotated[float, typer.Option(help="Price per 1k tokens for the cost.")] = 0.0,
    sample: Annotated[int, typer.Option(help="Records shown with provenance.")] = 5,
    debug: Annotated[bool, typer.Option(help="Show tracebacks.")] = False,
) -> None:
    """Write a self-contained report.html about a run (plots embedded); warns (and says so in
    the report) when the run is not complete: interrupted, failed, running, partial, stopped."""
    from synthloom.export.report import report_warnings, write_report

    def go() -> Path:
        if not (run_dir / "summary.json").is_file():
            raise SynthloomError(f"{run_dir}: no summary.json (is it a synthloom run folder?)")
        for warning in report_warnings(run_dir):
            console.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
        return write_report(run_dir, out, price_per_1k=price_per_1k, sample=sample)

    Console().print(f"report -> {_guard(go, debug)}", highlight=False)




@app.command()
def review(
    run_dir: Annotated[Path, typer.Argument(help="A run folder (data.jsonl, summary.json).")],
    port: Annotated[int, typer.Option(help="Port on the host (0: any free port).")] = 8765,
    host: Annotated[str, typer.Option(
        help="Address to bind. The default keeps the app on this machine; another address "
        "shows your records (and lets anyone decide on them) to the network.")] = "127.0.0.1",
    price_per_1k: Annotated[float, typer.Option(help="Price per 1k tokens for the cost.")] = 0.0,
    use_token: Annotated[bool, typer.Option(
        "--token/--no-token", help="Require the access token the printed URL carries "
        "(--no-token: anyone who reaches the port; refused with a non-local --host).")] = True,
    debug: Annotated[bool, typer.Option(help="Show tracebacks.")] = False,
) -> None:
    """Browse, judge and edit a run's records in a local web app (pip install
    'synthloom[review]'); then `export --reviewed accepted` or `run --regenerate rejected`."""

    def go() -> None:
        from synthloom.review.serve import serve

        serve(run_dir, host=host, port=port, price_per_1k=price_per_1k, use_token=use_token,
              warn=lambda message: console.print(message, highlight=False))

    _guard(go, debug)


def main() -> None:
    try:
        app()
    except SystemExit as exc:
        sys.exit(exc.code)


if __name__ == "__main__":
    main()
