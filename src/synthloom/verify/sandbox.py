"""Run untrusted (model-written) Python in a separate, limited process.

Isolation, strongest available first:

* ``namespace``: ``unshare`` gives the program fresh network (no interface but a down loopback),
  mount and PID namespaces. Inside, ``/tmp``, ``/var/tmp``, ``/dev/shm``, ``/run``, ``/root``
  and ``/home`` are empty tmpfs mounts (writes there vanish with the sandbox), everything else is
  read-only, and as real root the program runs under a throw-away uid (so the process limit
  binds and nothing of root's is readable). The launcher is PID 1: when the program ends, every
  process it left is killed by the kernel.
* ``none`` (``unshare`` unavailable, e.g. a container whose seccomp forbids it): the same
  resource limits and a process-group kill; networking is blocked only by an audit hook in the
  interpreter, which native code can bypass, and the filesystem and ``/proc`` are shared with
  the machine. As root, the program still runs under a throw-away uid when a probe shows that
  uid can start this interpreter (it cannot when the interpreter lives in a private folder such
  as ``/root/.pyenv``): root's files (its home, ``/proc/<pid>/environ`` of root's processes,
  the project if root-owned) are then out of reach, ``RLIMIT_NPROC`` binds, every process of the
  uid is killed afterwards and what it left at the top of ``/tmp``, ``/var/tmp`` and
  ``/dev/shm`` is removed. World-readable files stay readable. Without the uid (not root, or
  the probe failed) the program runs as the parent's user: it can read the environments of
  the user's processes (``OPENAI_API_KEY``) and write the user's files, and only a polled
  count of its process group limits processes. Either way the launcher is a subreaper and kills
  what the program left when it ends (also children in a session of their own; with the uid,
  all at once, so a fork bomb cannot outrun it). A warning says which variant, once.

Always: a fresh, private, writable temporary working directory (removed afterwards; it is
also ``HOME`` and ``TMPDIR``, so an honest program can write files; owned by the throw-away uid
when there is one; each file at most ``file_mb`` by ``RLIMIT_FSIZE``), limits on CPU time,
address space, processes, file size and open files, a wall-clock timeout that kills
everything, an environment with nothing inherited (``PATH``, ``LANG``, ``HOME``, ``TMPDIR`` and
one-thread settings for BLAS libraries only), stdout and stderr captured and truncated to a cap.

The caller's working folder is hidden too (namespace mode; an empty tmpfs over it, like the
folders above), so ``python -m synthloom`` run from a project cannot hand the program its
``.env``: only the interpreter's own import path (what ``python -I`` sees, not the caller's
``sys.path``, which holds the working folder under ``-m``) is re-exposed, read-only. Left
visible where hiding it would hide the system or the interpreter (``/``, ``/usr``, a folder
inside the interpreter's tree). Without namespaces the working folder cannot be hidden: the
program starts in its own folder but can open the caller's files by absolute path wherever
their permissions let its user (as root under a throw-away uid: world-readable files only).

``RLIMIT_AS`` is per process: a program that forks could hold ``processes`` times
``memory_mb``. The launcher therefore also sums the memory (PSS) of all the program's processes
every 20 ms and kills them all past ``memory_mb`` (status ``killed``). Polling lets a burst
overshoot for one interval; the per-process ``RLIMIT_AS`` and the process limit still bound it.
cgroups are not used: where they would be (a delegated cgroup v2 subtree) this machine's
limits still hold without them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
LAUNCHER = HERE / "_launcher.py"
BOOT = HERE / "_boot.py"

Status = Literal["ok", "error", "timeout", "killed"]
#: Folders hidden behind empty tmpfs mounts inside the namespace.
HIDE = ("/tmp", "/var/tmp", "/dev/shm", "/run", "/root", "/home")
SCRATCH = ("/tmp", "/var/tmp", "/dev/shm")
#: Throw-away uids are drawn from this range (no passwd entry needed).
UID_RANGE = (200_000, 2_000_000_000)
UNSHARE_FLAGS = ["--net", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc"]


class SandboxError(RuntimeError):
    """The sandbox itself could not be set up (not the program's fault)."""


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 10.0
    cpu_s: int | None = None  # default: the wall timeout, rounded up
    memory_mb: int = 512
    processes: int = 32
    file_mb: int = 16
    open_files: int = 64
    output_bytes: int = 64_000
    tmpfs_mb: int = 64

    @property
    def cpu(self) -> int:
        return self.cpu_s if self.cpu_s is not None else max(1, int(self.timeout_s + 0.999))


@dataclass
class SandboxResult:
    status: Status
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    isolation: str = "namespace"
    signal: int | None = None
    reason: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict[str, Any]:
        """The CLI's object: status, returncode, stdout, stderr, seconds (+ details)."""
        data = asdict(self)
        data["seconds"] = round(self.seconds, 3)
        return data


# --- what this machine allows ----------------------------------------------------------------


@dataclass(frozen=True)
class Isolation:
    kind: str  # "namespace" | "none"
    prefix: tuple[str, ...]
    drop_uid: bool
    message: str


@lru_cache(maxsize=1)
def isolation() -> Isolation:
    """Probe once per process which isolation works here."""
    if os.environ.get("SYNTHLOOM_SANDBOX_ISOLATION") == "none":
        return _no_isolation("SYNTHLOOM_SANDBOX_ISOLATION=none")
    unshare = shutil.which("unshare")
    if sys.platform != "linux" or unshare is None:
        return _no_isolation("the unshare command (util-linux) was not found")
    # As real root the program drops to a throw-away uid in both modes (see _no_isolation).
    is_root = os.geteuid() == 0
    flags = UNSHARE_FLAGS if is_root else ["--user", "--map-root-user", *UNSHARE_FLAGS]
    try:
        probe = subprocess.run([unshare, *flags, "true"], capture_output=True, timeout=10,
                               env={"PATH": os.defpath})
    except (OSError, subprocess.TimeoutExpired) as exc:
        return _no_isolation(f"unshare failed: {exc}")
    if probe.returncode != 0:
        why = probe.stderr.decode(errors="replace").strip() or f"exit {probe.returncode}"
        return _no_isolation(f"unshare {' '.join(flags)} failed: {why}")
    return Isolation("namespace", (unshare, *flags), is_root, "network, mount and PID namespaces")


def _no_isolation(why: str) -> Isolation:
    base = (f"sandbox: no namespaces ({why}); running with resource limits and a "
            "socket-blocking audit hook (native code can bypass it), the filesystem and /proc "
            "shared with this machine")
    if os.geteuid() != 0:
        return Isolation("none", (), False, base + (
            ", as your own user: the program can read the environments of your processes "
            "(e.g. OPENAI_API_KEY) and write your files; use a machine that allows namespaces"))
    failure = _uid_drop_failure()
    if failure:
        return Isolation("none", (), False, base + (
            f", as root: a throw-away uid cannot run this interpreter ({failure}); install "
            "Python outside private folders such as /root, or use a machine that allows "
            "namespaces"))
    return Isolation("none", (), True, base + (
        ", under a throw-away uid: root's files and processes are out of reach, "
        "world-readable files and /tmp are not"))


def _draw_uid() -> int:
    return UID_RANGE[0] + secrets.randbelow(UID_RANGE[1] - UID_RANGE[0])


def _uid_drop_failure() -> str:
    """Why a throw-away uid could not run programs here ('' when it can).

    Without a mount namespace the dropped program sees the real filesystem: the interpreter,
    its import path and the work directory must be reachable by an arbitrary uid (a pyenv
    under /root, mode 0700, is not), and the container must grant setuid/setgid."""
    uid = _draw_uid()
    workdir = tempfile.mkdtemp(prefix="synthloom-sbx-probe-")
    try:
        os.chown(workdir, uid, uid)
        os.chmod(workdir, 0o700)
        probe = subprocess.run(
            [sys.executable, "-I", "-c", "import os, sys; os.listdir(sys.argv[1])", workdir],
            user=uid, group=uid, extra_groups=[], cwd=workdir, capture_output=True,
            timeout=20, env=_clean_env(workdir))
    except (OSError, subprocess.SubprocessError) as exc:
        return str(exc)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if probe.returncode != 0:
        lines = probe.stderr.decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else f"exit {probe.returncode}"
    return ""


_warned = False


def _warn_once(iso: Isolation) -> None:
    global _warned
    if iso.kind == "none" and not _warned:
        _warned = True
        log.warning(iso.message)


# --- running ---------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _child_sys_path() -> tuple[str, ...]:
    """The import path of ``python -I`` here: what the program's interpreter uses. Not this
    process's ``sys.path``: under ``python -m`` that starts with the caller's working folder,
    and pytest or ``PYTHONPATH`` add more."""
    try:
        probe = subprocess.run([sys.executable, "-I", "-c",
                                "import json, sys; print(json.dumps(sys.path))"],
                               capture_output=True, timeout=30, env={"LANG": "C.UTF-8"},
                               cwd="/")
        return tuple(json.loads(probe.stdout))
    except (OSError, subprocess.SubprocessError, ValueError):
        return ()


def _expose_paths() -> list[str]:
    """The interpreter and its import path must stay readable inside the namespace."""
    paths = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    paths.add(os.path.dirname(os.path.realpath(sys.executable)))
    for entry in _child_sys_path():
        if entry and os.path.isdir(entry):
            paths.add(os.path.realpath(entry))
    return sorted(paths)


#: Hiding the caller's working folder when it is one of these or holds one would hide the system.
SYSTEM = ("/", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/proc",
          "/sys", "/dev", "/var", "/opt", "/nix", "/snap")


def _hidden_cwd(expose: list[str]) -> str | None:
    """The caller's working folder, to hide behind an empty tmpfs; None where that would hide
    the system or the interpreter's own tree (it then stays visible, read-only)."""
    try:
        cwd = os.path.realpath(os.getcwd())
    except OSError:
        return None
    if any(_is_under(system, cwd) for system in SYSTEM):
        return None
    if any(_is_under(cwd, path) for path in expose):  # inside (or equal to) the interpreter's
        return None
    return cwd


def _is_under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _clean_env(workdir: str) -> dict[str, str]:
    bindir = os.path.dirname(sys.executable)
    threads = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                      "MKL_NUM_THREADS")}  # threads count as processes
    return {"PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
            "HOME": workdir, "TMPDIR": workdir, "PYTHONDONTWRITEBYTECODE": "1", **threads}


@lru_cache(maxsize=1)
def _boot_source() -> str:
    return BOOT.read_text(encoding="utf-8")


def _prepare(code: str, limits: SandboxLimits, block_sockets: bool,
             files: dict[str, str] | None) -> tuple[list[str], dict[str, Any], str, Isolation]:
    for name in files or {}:
        if not name or name != Path(name).name or name in (".", "..", "main.py"):
            raise ValueError(f"sandbox file name must be a plain name (not main.py): {name!r}")
    iso = isolation()
    _warn_once(iso)
    workdir = tempfile.mkdtemp(prefix="synthloom-sbx-")
    Path(workdir, "main.py").write_text(code, encoding="utf-8")
    for name, text in (files or {}).items():
        Path(workdir, name).write_text(text, encoding="utf-8")
    uid = None
    if iso.drop_uid:
        uid = _draw_uid()
        for path in [workdir, *(str(p) for p in Path(workdir).iterdir())]:
            os.chown(path, uid, uid)
        os.chmod(workdir, 0o700)
    python = sys.executable
    argv = ([python, "-I", "-c", _boot_source(), "main.py"] if block_sockets
            else [python, "-I", "main.py"])
    expose = _expose_paths()
    hide = list(HIDE)
    if iso.kind == "namespace" and (cwd := _hidden_cwd(expose)) is not None:
        hide.append(cwd)
    cfg = {
        "workdir": workdir, "argv": argv, "env": _clean_env(workdir), "uid": uid,
        "namespaces": iso.kind == "namespace", "expose": expose, "hide": hide,
        "scratch": list(SCRATCH), "tmpfs_mb": limits.tmpfs_mb,
        "limits": {"cpu_s": limits.cpu, "memory_mb": limits.memory_mb,
                   "processes": limits.processes, "file_mb": limits.file_mb,
                   "open_files": limits.open_files},
    }
    return [*iso.prefix, python, "-I", "-S", str(LAUNCHER)], cfg, workdir, iso


class _Capped:
    """The first ``cap`` bytes of a stream; kept here so a cut-off read keeps what it had."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.kept = bytearray()
        self.truncated = False

    async def drain(self, stream: asyncio.StreamReader) -> None:
        """Keep the first ``cap`` bytes, drain (and drop) the rest so the program never blocks."""
        while chunk := await stream.read(65536):
            room = self.cap - len(self.kept)
            if room > 0:
                self.kept += chunk[:room]
            if len(chunk) > room:
                self.truncated = True


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _processes_of(uid: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{name}").st_uid == uid:
                    found.append(int(name))
    return found


#: Run as the throw-away uid: signals every process of that uid at once (kill(-1) skips only
#: the caller and init). Fork cannot complete while the kernel walks the task list for it.
KILL_ALL = "import os\nfor _ in range(3):\n    try:\n        os.kill(-1, 9)\n    except OSError:\n        pass\n"


async def _kill_all_of(uid: int) -> None:
    with contextlib.suppress(OSError):
        killer = await asyncio.create_subprocess_exec(
            sys.executable, "-I", "-S", "-c", KILL_ALL, user=uid, group=uid, extra_groups=[],
            cwd="/", env={}, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        await killer.wait()


async def _until_gone(uid: int | None, deadline_s: float = 5.0, *,
                      as_uid: bool = False) -> None:
    """Wait until no process of the throw-away ``uid`` is left (killing any found).

    The kernel tears a PID namespace down asynchronously: the outer ``unshare`` can be reaped
    while the namespace's last processes are still exiting. "Contained" means none is left when
    the result is returned, so wait for that, bounded. Without a PID namespace (``as_uid``,
    the fallback mode, where the uid is known to run this interpreter) leftovers may still be
    forking, even in a session of their own: one kill per pid never catches up with a fork
    bomb, so a helper running as the uid kills them all at once."""
    if uid is None:
        return
    end = time.monotonic() + deadline_s
    while (left := _processes_of(uid)) and time.monotonic() < end:
        if as_uid:
            await _kill_all_of(uid)
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.01)
    if left:
        log.warning("sandbox: %d process(es) of uid %d still exiting after %.0f s",
                    len(left), uid, deadline_s)


async def _exit_of(proc: asyncio.subprocess.Process, deadline_s: float = 5.0) -> None:
    """Wait for the launcher's exit alone (``Process.wait`` would also wait for its pipes)."""
    end = time.monotonic() + deadline_s
    while proc.returncode is None and time.monotonic() < end:
        await asyncio.sleep(0.005)


def _sweep_scratch(uid: int | None) -> None:
    """Fallback mode: remove what the throw-away ``uid`` left at the top of the shared scratch
    folders (the namespace mode's are private tmpfs mounts). Best effort: a file in a deeper
    world-writable folder stays. Only called once no process of the uid is left, so nothing
    races the removal; symlinks are unlinked, never followed."""
    if uid is None:
        return
    for folder in SCRATCH:
        with contextlib.suppress(OSError), os.scandir(folder) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    if entry.stat(follow_symlinks=False).st_uid != uid:
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path, ignore_errors=True)
                    else:
                        os.unlink(entry.path)


async def run_python(code: str, limits: SandboxLimits | None = None, *,
                     block_sockets: bool = True,
                     files: dict[str, str] | None = None) -> SandboxResult:
    """Run ``code`` as ``main.py`` in a fresh sandbox (async; for steps)."""
    limits = limits or SandboxLimits()
    command, cfg, workdir, iso = _prepare(code, limits, block_sockets, files)
    read_fd, write_fd = os.pipe()
    cfg["status_fd"] = write_fd
    began = time.perf_counter()
    try:
        try:
            proc = await asyncio.create_subprocess_exec(
                *command, json.dumps(cfg), stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                env=_clean_env(workdir), cwd=workdir, pass_fds=(write_fd,),
                start_new_session=True)
        finally:
            os.close(write_fd)
        assert proc.stdout is not None and proc.stderr is not None
        out, err = _Capped(limits.output_bytes), _Capped(limits.output_bytes)
        readers = asyncio.gather(out.drain(proc.stdout), err.drain(proc.stderr))
        timed_out = False
        try:
            await asyncio.wait_for(proc.wait(), timeout=limits.timeout_s)
        except TimeoutError:
            # Process.wait() also waits for the pipes: a leftover of an ended program can hold
            # them (fallback mode, a child in a session of its own). Only a running one is late.
            timed_out = proc.returncode is None
        finally:
            _kill_group(proc.pid)  # whatever is left in the group (the namespace dies with it)
            await _until_gone(cfg["uid"], as_uid=not cfg["namespaces"])
            await _exit_of(proc)
            if not cfg["namespaces"]:
                _sweep_scratch(cfg["uid"])
        try:
            await asyncio.wait_for(readers, timeout=2)
        except TimeoutError:  # a leftover holds the pipes open: keep what came, drop the rest
            out.truncated = err.truncated = True
            readers.cancel()
            transport = getattr(proc, "_transport", None)  # no public way to drop the pipes
            if transport is not None:
                transport.close()
        seconds = time.perf_counter() - began
        report = _read_status(read_fd)
    finally:
        os.close(read_fd)
        shutil.rmtree(workdir, ignore_errors=True)
    return _result(report, timed_out, limits, seconds, iso, bytes(out.kept), bytes(err.kept),
                   out.truncated, err.truncated)


def _read_status(fd: int) -> dict[str, Any]:
    os.set_blocking(fd, False)
    try:
        data = os.read(fd, 65536)
    except BlockingIOError:
        return {}
    try:
        return json.loads(data) if data else {}
    except json.JSONDecodeError:
        return {}


def _result(report: dict[str, Any], timed_out: bool, limits: SandboxLimits, seconds: float,
            iso: Isolation, out: bytes, err: bytes, out_cut: bool,
            err_cut: bool) -> SandboxResult:
    if "setup_error" in report:
        raise SandboxError(f"sandbox setup failed: {report['setup_error']}")
    returncode = report.get("returncode")
    sig = report.get("signal")
    cpu = float(report.get("cpu_s", 0.0))
    status: Status
    if timed_out:
        status, reason = "timeout", f"wall time over {limits.timeout_s:g}s"
    elif report.get("process_limit"):
        status, reason = "killed", f"more than {limits.processes} processes"
    elif report.get("memory_limit"):
        status, reason = "killed", (f"memory over {limits.memory_mb} MB in all its processes "
                                    "together")
    elif sig is not None:
        if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= limits.cpu - 0.05):
            status, reason = "timeout", f"CPU time over {limits.cpu}s"
        else:
            status, reason = "killed", f"killed by {signal.Signals(sig).name}"
    elif returncode is None:
        status, reason = "killed", "the sandbox ended without reporting an exit status"
    elif returncode == 0:
        status, reason = "ok", ""
    else:
        status, reason = "error", f"exit status {returncode}"
        if b"MemoryError" in err:
            reason += f" (memory limit {limits.memory_mb} MB)"
    return SandboxResult(
        status=status, returncode=returncode, signal=sig, reason=reason,
        stdout=out.decode("utf-8", errors="replace"), stderr=err.decode("utf-8", errors="replace"),
        seconds=seconds, isolation=iso.kind, stdout_truncated=out_cut, stderr_truncated=err_cut,
        notes=list(report.get("notes", [])))


def run_python_sync(code: str, limits: SandboxLimits | None = None, *,
                    block_sockets: bool = True,
                    files: dict[str, str] | None = None) -> SandboxResult:
    """Blocking twin of :func:`run_python` (usable inside a running event loop too)."""
    coro_args = (code, limits)
    kwargs = {"block_sockets": block_sockets, "files": files}
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run_python(*coro_args, **kwargs))
    box: list[SandboxResult | BaseException] = []

    def worker() -> None:
        try:
            box.append(asyncio.run(run_python(*coro_args, **kwargs)))
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller
            box.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    if isinstance(box[0], BaseException):
        raise box[0]
    return box[0]


def run_file(path: str | Path, limits: SandboxLimits | None = None) -> SandboxResult:
    return run_python_sync(Path(path).read_text(encoding="utf-8"), limits)
