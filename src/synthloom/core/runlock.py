"""One run per output folder: OUT/.lock holds the running process's pid.

Why: two runs on one folder would interleave writes to the same run store and JSONL files.
The lock is created with O_EXCL (atomic on local filesystems); a lock whose pid is no longer
alive is stale (the holder crashed) and is taken over with a warning.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from synthloom.core.errors import SynthloomError

log = logging.getLogger(__name__)


class RunLockedError(SynthloomError):
    """Another live process holds the output folder's lock."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


class RunLock:
    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / ".lock"
        self._held = False

    def acquire(self) -> None:
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    pid = int(self.path.read_text().strip() or "0")
                except (OSError, ValueError):
                    pid = 0
                if pid and pid != os.getpid() and _alive(pid):
                    raise RunLockedError(
                        f"output folder {self.path.parent} is in use by another run "
                        f"(pid {pid}, lock {self.path}); wait for it or use another --out"
                    ) from None
                log.warning("taking over stale lock %s (pid %s is not running)", self.path, pid)
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(f"{os.getpid()}\n")
            self._held = True
            return
        raise RunLockedError(f"could not take the lock {self.path}")

    def release(self) -> None:
        if self._held:
            self.path.unlink(missing_ok=True)
            self._held = False
