"""Sandbox launcher: runs as the first process of the sandbox (stdlib only, ``python -I -S``).

Started by :mod:`synthloom.verify.sandbox`, usually inside fresh network + mount + PID
namespaces made by ``unshare``, with one JSON argument. It

1. (namespaces only) hides the writable and private parts of the filesystem (``/tmp``,
   ``/root``, ``/home``, ..., and the caller's working folder) behind empty tmpfs mounts, re-exposing only the Python
   installation (read-only) and the work directory (read-write), and makes the rest read-only
   where it can;
2. forks the program: the child sets its resource limits, drops to the throw-away uid it was
   given (``cfg["uid"]``: the launcher is real root, in either mode; so RLIMIT_NPROC binds and
   nothing of root's is readable or writable), and execs;
3. reaps every process until the program exits, while a watchdog sums the memory of all the
   program's processes (RLIMIT_AS binds each alone) and counts them where RLIMIT_NPROC cannot
   bind (no uid to drop to), killing them all past either limit; and writes the exit status
   as JSON to the status fd.

As PID 1 of the namespace its exit kills whatever the program left behind. Without namespaces
it is a child subreaper and, once the program has exited, kills what is left: every process of
the throw-away uid at once (kill(-1) as that uid), or without a uid its process group and its
descendant tree; the caller then kills the group and waits until the uid has no process.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import signal
import sys
import threading
import time

MS_RDONLY, MS_NOSUID, MS_NODEV = 1, 2, 4
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
PR_SET_CHILD_SUBREAPER = 36
SKIP_READONLY = ("/proc", "/sys", "/dev")

_libc = ctypes.CDLL(None, use_errno=True)


def _mount(source: str | None, target: str, fstype: str | None, flags: int,
           data: str | None = None) -> None:
    def enc(value: str | None) -> bytes | None:
        return value.encode() if value is not None else None

    if _libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def _mount_points() -> list[str]:
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        for line in handle:
            point = line.split()[4].replace("\\040", " ")
            points.append(point)
    return points


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def setup_filesystem(cfg: dict) -> list[str]:
    """Returns notes on what could not be done (best effort beyond the hides)."""
    notes: list[str] = []
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    # Read-only view of everything already mounted (a write elsewhere fails with EROFS).
    for point in sorted(set(_mount_points()), key=len):
        if any(_under(point, s) for s in SKIP_READONLY):
            continue
        try:
            _mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
        except OSError as exc:
            notes.append(str(exc))
    # Open what must stay reachable before hiding the folders it lives in.
    expose = [(p, False) for p in cfg["expose"]] + [(cfg["workdir"], True)]
    fds = {}
    for path, _ in expose:
        try:
            fds[path] = os.open(path, os.O_PATH | os.O_DIRECTORY)
        except OSError as exc:
            notes.append(f"expose {path}: {exc}")
    hidden = []
    for path in cfg["hide"]:
        if not os.path.isdir(path) or os.path.islink(path):
            continue
        mode = "1777" if path in cfg["scratch"] else "755"
        _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV,
               f"mode={mode},size={cfg['tmpfs_mb']}m")
        hidden.append(path)
    done: list[str] = []
    # Read-only exposes first (shortest first), the writable work dir last, on top of them.
    order = sorted((e for e in expose if not e[1]), key=lambda e: len(e[0]))
    for path, writable in [*order, (cfg["workdir"], True)]:
        inside = any(_under(path, h) and path != h for h in hidden)
        covers = any(_under(h, path) for h in hidden)
        if path not in fds or not inside or (covers and not writable):
            continue  # visible anyway, or it would re-expose a whole hidden folder
        if not writable and any(_under(path, d) for d in done):
            continue
        if not os.path.exists(path):
            os.makedirs(path, mode=0o755, exist_ok=True)
        _mount(f"/proc/self/fd/{fds[path]}", path, None, MS_BIND | MS_REC)
        # A bind keeps the read-only flag its source got above: set the flags either way (the
        # work dir writable, so an honest program can write its files there).
        ro = 0 if writable else MS_RDONLY
        _mount(None, path, None, MS_REMOUNT | MS_BIND | ro | MS_NOSUID | MS_NODEV)
        done.append(path)
    for fd in fds.values():
        os.close(fd)
    return notes


def _limits(cfg: dict) -> None:
    lim = cfg["limits"]
    cpu = int(lim["cpu_s"])
    # Soft limit sends SIGXCPU, the hard limit one second later SIGKILL.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    mem = int(lim["memory_mb"]) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    fsize = int(lim["file_mb"]) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    resource.setrlimit(resource.RLIMIT_NOFILE, (lim["open_files"], lim["open_files"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if cfg.get("uid") is not None:
        # Counted per uid: the throw-away uid owns only this sandbox's processes.
        nproc = int(lim["processes"])
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))


def _child(cfg: dict) -> None:
    try:
        os.chdir(cfg["workdir"])
        _limits(cfg)
        uid = cfg.get("uid")
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        for sig in (signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(sig, signal.SIG_DFL)
        os.execve(cfg["argv"][0], cfg["argv"], cfg["env"])
    except BaseException as exc:  # noqa: BLE001 - report why the program could not start
        os.write(2, f"sandbox: could not start the program: {exc}\n".encode())
        os._exit(126)


def _group_members(pgid: int) -> list[int]:
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after "comm)": state, ppid, pgrp
            pids.append(int(name))
    return pids


def _kill_group_but_me(pgid: int) -> None:
    me = os.getpid()
    for _ in range(50):
        others = [p for p in _group_members(pgid) if p != me]
        if not others:
            return
        for pid in others:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def _memory_kb(pid: int) -> int:
    """The process's proportional share of memory (PSS: shared pages split between the
    processes sharing them, so forks of one interpreter are not counted many times), or its
    RSS where smaps_rollup is missing; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as handle:
            for line in handle:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            return int(handle.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
    except (OSError, ValueError, IndexError):
        return 0


def _sandbox_pids(cfg: dict, pgid: int) -> list[int]:
    """The program's processes: the whole PID namespace but the launcher; else those of the
    throw-away uid; else the launcher's process group but itself."""
    me = os.getpid()
    if cfg.get("namespaces"):
        return [int(n) for n in os.listdir("/proc") if n.isdigit() and int(n) != me]
    uid = cfg.get("uid")
    if uid is not None:
        found = []
        for name in os.listdir("/proc"):
            if name.isdigit():
                with contextlib.suppress(OSError):
                    if os.stat(f"/proc/{name}").st_uid == uid:
                        found.append(int(name))
        return found
    return [p for p in _group_members(pgid) if p != me]


def _kill_sandbox(cfg: dict, pgid: int) -> None:
    if cfg.get("namespaces"):  # PID 1 of the namespace: kill(-1) reaches all but itself
        for _ in range(3):
            with contextlib.suppress(OSError):
                os.kill(-1, signal.SIGKILL)
    elif cfg.get("uid") is not None:
        _kill_uid(int(cfg["uid"]))
    else:
        _kill_group_but_me(pgid)


def _watch(cfg: dict, pgid: int, tripped: dict[str, bool]) -> None:
    """Every 20 ms: the memory of all the program's processes together against ``memory_mb``
    (RLIMIT_AS binds each process alone), and where RLIMIT_NPROC cannot bind (no uid to drop
    to) their number against ``processes``. Past either, all are killed. Polling lets a burst
    overshoot for one interval."""
    memory_kb = int(cfg["limits"]["memory_mb"]) * 1024
    counted = cfg.get("uid") is None
    process_limit = int(cfg["limits"]["processes"])
    while True:
        time.sleep(0.02)
        pids = _sandbox_pids(cfg, pgid)
        if counted and len(pids) > process_limit:
            tripped["process_limit"] = True
        elif sum(_memory_kb(pid) for pid in pids) > memory_kb:
            tripped["memory_limit"] = True
        else:
            continue
        _kill_sandbox(cfg, pgid)
        return


def main() -> None:
    cfg = json.loads(sys.argv[1])
    status_fd = int(cfg["status_fd"])
    os.set_inheritable(status_fd, False)
    notes: list[str] = []
    if cfg.get("namespaces"):
        try:
            notes = setup_filesystem(cfg)
        except OSError as exc:
            os.write(status_fd, json.dumps({"setup_error": str(exc)}).encode())
            os._exit(0)
    if not cfg.get("namespaces"):
        # Orphans of the program become the launcher's children (not init's, which may reap
        # late): they are reaped below, so no zombie of the throw-away uid outlives the run.
        _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    pid = os.fork()
    if pid == 0:
        _child(cfg)
    tripped: dict[str, bool] = {}
    counted = cfg.get("uid") is None
    # The program stays in the launcher's process group, which the caller kills on timeout.
    threading.Thread(target=_watch, daemon=True, args=(cfg, os.getpgid(0), tripped)).start()
    status = rusage = None
    while status is None:
        try:
            reaped, code, usage = os.wait4(-1, 0)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if reaped == pid:
            status, rusage = code, usage
    report: dict = {"notes": notes[:5], **tripped}
    if status is not None and rusage is not None:
        report["cpu_s"] = rusage.ru_utime + rusage.ru_stime
        if os.WIFSIGNALED(status):
            report["signal"] = os.WTERMSIG(status)
        else:
            report["returncode"] = os.WEXITSTATUS(status)
    os.write(status_fd, json.dumps(report).encode())
    if not cfg.get("namespaces"):  # what the program left behind (else PID 1's exit does it)
        if counted:
            _kill_group_but_me(os.getpgid(0))
            _kill_descendants()  # also those in a session of their own (best effort)
            _reap_all(block=False)
        else:
            _kill_uid(int(cfg["uid"]))
            _reap_all(block=True)
    os._exit(0)


def _kill_descendants() -> None:
    """As subreaper every process the program made descends from the launcher: kill the tree,
    pass after pass (a racing fork bomb can outrun a pass; the caller's timeout bounds it)."""
    me = os.getpid()
    for _ in range(50):
        parent: dict[int, int] = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/stat", "rb") as handle:
                    parent[int(name)] = int(handle.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
        tree, frontier = set(), {me}
        while frontier:
            frontier = {pid for pid, ppid in parent.items() if ppid in frontier} - tree
            tree |= frontier
        if not tree:
            return
        for pid in tree:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        _reap_all(block=False)


def _reap_all(block: bool) -> None:
    """Reap the (killed) children left; SIGKILLed processes exit promptly."""
    while True:
        try:
            pid, _, _ = os.wait4(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return
        except InterruptedError:
            continue
        if pid == 0:
            return


def _kill_uid(uid: int) -> None:
    """Kill every process of the throw-away uid, even those in a session of their own: a child
    that becomes the uid signals all of them at once (kill(-1) spares only itself and init;
    no fork completes while the kernel walks the task list)."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            for _ in range(3):
                with contextlib.suppress(OSError):
                    os.kill(-1, signal.SIGKILL)
        finally:
            os._exit(0)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
