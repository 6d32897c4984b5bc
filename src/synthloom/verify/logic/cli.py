"""``synthloom logic tasks | show | verify``: list the tasks, print one item, re-grade a file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

logic_app = typer.Typer(add_completion=False, no_args_is_help=True,
                        help="Logic tasks: list, show one item, re-verify a data.jsonl.")


@logic_app.command("tasks")
def tasks_command() -> None:
    """One line per task: name, whether its answer is unique, whose task it is (SynLogic's or
    ours), what it is."""
    from synthloom.verify.logic import TASKS

    width = max(map(len, TASKS))
    for name, task in TASKS.items():
        origin = "synlogic" if task.synlogic else "ours"
        print(f"{name:{width}}  {'unique' if task.unique else 'any':6}  {origin:8}  "
              f"{task.description}")


@logic_app.command("show")
def show_command(
    task: Annotated[str, typer.Argument(help="Task name (see `synthloom logic tasks`).")],
    difficulty: Annotated[int, typer.Option(help="Level 1-5.")] = 3,
    seed: Annotated[int, typer.Option(help="Generator seed.")] = 0,
) -> None:
    """Print the item for (task, difficulty, seed) as one JSON object."""
    from synthloom.verify.logic import make_item

    print(json.dumps(make_item(task, difficulty, seed), ensure_ascii=False))


def regrade(record: dict[str, Any], check_unique: bool) -> dict[str, Any]:
    """What the verifiers say about one record now: the stored answer, and the model's."""
    from synthloom.verify.logic import check_record, make_item, verify_answer

    out: dict[str, Any] = {"task": record.get("task"), "index": record.get("index")}
    out["answer_reason"] = check_record(record, check_unique)
    try:  # the (task, difficulty, seed) triple must rebuild the same puzzle
        again = make_item(str(record["task"]), int(record["difficulty"]), int(record["seed"]))
        out["regenerates"] = again["question"] == record.get("question")
    except (KeyError, ValueError, TypeError):
        out["regenerates"] = False
    if "solved" in record:
        solved = verify_answer(record, record.get("model_answer")) is None
        out["solved_agrees"] = solved == bool(record["solved"])
    return out


@logic_app.command("verify")
def verify_command(
    file: Annotated[Path, typer.Argument(help="A data.jsonl written by the logic recipes.",
                                         exists=True, dir_okay=False, readable=True)],
    unique: Annotated[bool, typer.Option(help="Re-count solutions of unique tasks.")] = True,
    regenerate: Annotated[bool, typer.Option(help="Check each (task, difficulty, seed) "
                                                  "rebuilds the same question.")] = True,
) -> None:
    """Re-grade every record: the stored answer must pass its task's verifier (and be the only
    answer where the task promises one), the seed must rebuild the puzzle, and a stored
    ``solved`` must agree with the verifier on ``model_answer``. Prints one JSON summary; the
    exit code is 1 when any record fails."""
    records = [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines()
               if line.strip()]
    failures: list[dict[str, Any]] = []
    per_task: dict[str, int] = {}
    solved = 0
    for record in records:
        result = regrade(record, unique)
        per_task[str(result["task"])] = per_task.get(str(result["task"]), 0) + 1
        solved += bool(record.get("solved"))
        bad = (result["answer_reason"] is not None or result.get("solved_agrees") is False
               or (regenerate and not result["regenerates"]))
        if bad:
            failures.append(result)
    summary = {"records": len(records), "ok": len(records) - len(failures),
               "failed": len(failures), "per_task": per_task,
               "solved": solved if any("solved" in r for r in records) else None,
               "failures": failures[:20]}
    print(json.dumps(summary, ensure_ascii=False))
    raise typer.Exit(1 if failures else 0)
