"""``synthloom sandbox run FILE.py``: run a Python file in the sandbox, print one JSON object."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

sandbox_app = typer.Typer(add_completion=False, no_args_is_help=True,
                          help="Run untrusted Python in the sandbox (see docs/verify.md).")


@sandbox_app.command("run")
def run_command(
    file: Annotated[Path, typer.Argument(help="The Python file to run.", exists=True,
                                         dir_okay=False, readable=True)],
    timeout: Annotated[float, typer.Option(help="Wall-clock limit in seconds.")] = 10.0,
    memory_mb: Annotated[int, typer.Option(help="Address-space limit in MB.")] = 512,
    cpu: Annotated[int | None, typer.Option(help="CPU-time limit in seconds "
                                                  "(default: the timeout).")] = None,
    processes: Annotated[int, typer.Option(help="Process limit.")] = 32,
    output_bytes: Annotated[int, typer.Option(help="Cap on stdout and on stderr.")] = 64_000,
) -> None:
    """Print {"status": "ok|error|timeout|killed", "returncode", "stdout", "stderr",
    "seconds", ...}; the exit code is 0 whatever the program did."""
    from synthloom.verify.sandbox import SandboxLimits, run_file

    limits = SandboxLimits(timeout_s=timeout, memory_mb=memory_mb, cpu_s=cpu,
                           processes=processes, output_bytes=output_bytes)
    print(json.dumps(run_file(file, limits).to_json(), ensure_ascii=False))
