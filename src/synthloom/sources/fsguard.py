"""What a folder source may open, and how it names what it found.

A corpus folder is data someone handed over, not a place to trust: a link in it may point at
``/proc/self/environ`` or ``~/.ssh/id_rsa``, a FIFO blocks whoever opens it, and a file name need
not be UTF-8. The folder sources list their inputs with :func:`walk_tree`, ask :func:`refusal`
about each before opening it (``lstat``/``stat`` only: a FIFO or device is never opened), and
name paths with :func:`shown`, so that no record or failure row carries a lone surrogate that
JSON writing (orjson) or SQLite would refuse.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path

from synthloom.sources.document import (
    DanglingSymlink,
    DocumentError,
    ForbiddenPath,
    OutsideFolder,
    SpecialFile,
    UnreadableFile,
)

#: Kernel pseudo-filesystems and device nodes: process environments, keys, endless streams.
FORBIDDEN_ROOTS = ("/proc", "/sys", "/dev")
FOLLOW_HINT = "set follow_symlinks: true on the source to read links out of the folder"

Entry = tuple[Path, DocumentError | None]


def safe_str(text: str) -> str:
    """``text`` as valid UTF-8: undecodable file-name bytes (surrogate escapes) written as
    ``\\xe9``, other lone surrogates as ``\\udc..``."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:  # the bytes the file system really holds, each bad byte shown as \\xNN
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def shown(path: str | os.PathLike[str]) -> str:
    """A path as records and failure rows name it (see :func:`safe_str`)."""
    return safe_str(os.fspath(path))


def is_forbidden(path: str) -> bool:
    return any(path == r or path.startswith(r + "/") for r in FORBIDDEN_ROOTS)


def is_inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"


def _forbidden(real: str, what: str) -> ForbiddenPath:
    top = next(r for r in FORBIDDEN_ROOTS if real == r or real.startswith(r + "/"))
    return ForbiddenPath(f"{what} {shown(real)}: under {top} (kernel state or a device, "
                         "never corpus text): refused")


def refusal(path: Path, folder: str | None, follow_symlinks: bool) -> DocumentError | None:
    """Why ``path`` must not be opened, or None. Never opens it.

    ``folder`` is the real path of the source's folder (None for a file named on its own):
    a link resolving out of it is refused unless ``follow_symlinks``. Links into /proc, /sys
    or /dev, dangling links, FIFOs, sockets and devices are always refused."""
    try:
        info = os.lstat(path)
    except OSError as exc:
        return UnreadableFile(f"cannot be examined: {exc.strerror}")
    if stat.S_ISLNK(info.st_mode):
        try:
            target = os.readlink(path)
            real = os.path.realpath(path, strict=True)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return DanglingSymlink(f"symbolic link loop ({shown(target)}): nothing to read")
            if isinstance(exc, FileNotFoundError):
                return DanglingSymlink(f"dangling symbolic link: its target {shown(target)} "
                                       "does not exist")
            return UnreadableFile(f"symbolic link to {shown(target)} cannot be resolved: "
                                  f"{exc.strerror}")
        if is_forbidden(real):
            return _forbidden(real, "symbolic link to")
        if folder is not None and not follow_symlinks and not is_inside(real, folder):
            return OutsideFolder(f"symbolic link to {shown(real)}, outside the folder "
                                 f"{shown(folder)}: not followed ({FOLLOW_HINT})")
        try:
            info = os.stat(real)
        except OSError as exc:
            return UnreadableFile(f"symbolic link to {shown(real)}: {exc.strerror}")
    elif is_forbidden(os.path.abspath(path)):
        return _forbidden(os.path.abspath(path), "path")
    if not stat.S_ISREG(info.st_mode):
        return SpecialFile(f"is {_kind(info.st_mode)}, not a regular file: not opened")
    return None


def root_refusal(root: Path) -> DocumentError | None:
    """The source's own path resolving into /proc, /sys or /dev (``path: /proc/self``)."""
    real = os.path.realpath(root)
    return _forbidden(real, "path resolves to") if is_forbidden(real) else None


def walk_tree(root: Path, *, follow_symlinks: bool = False, skip_hidden: bool = False,
              unit_dir: Callable[[Path], bool] | None = None) -> list[Entry]:
    """Every non-folder entry under ``root`` (links, FIFOs and devices included: ask
    :func:`refusal` before opening one), and each folder ``unit_dir`` says is read whole
    (an HF dataset), sorted by path, each with None or why it is refused up front.

    A link to a folder inside ``root`` is not entered (its real path is walked anyway). A link
    to a folder out of ``root`` is listed with :class:`OutsideFolder` unless
    ``follow_symlinks``; then it is walked, once per real folder (a link loop ends)."""
    folder = os.path.realpath(root)
    found: list[Entry] = []
    walked = {folder}
    stack = [(root, folder)]
    while stack:
        here, here_real = stack.pop()
        try:
            with os.scandir(here) as listing:
                entries = list(listing)
        except OSError as exc:
            found.append((here, UnreadableFile(f"folder cannot be listed: {exc.strerror}")))
            continue
        for entry in entries:
            if skip_hidden and entry.name.startswith("."):
                continue
            path = Path(entry.path)
            try:
                is_dir = entry.is_dir()  # follows a link
            except OSError:
                is_dir = False
            if not is_dir:
                found.append((path, None))
                continue
            if entry.is_symlink():
                real = os.path.realpath(path)
                if is_forbidden(real):
                    found.append((path, _forbidden(real, "link to the folder")))
                    continue
                if is_inside(real, folder):
                    continue
                if not follow_symlinks:
                    found.append((path, OutsideFolder(
                        f"link to the folder {shown(real)}, outside the folder "
                        f"{shown(folder)}: not followed ({FOLLOW_HINT})")))
                    continue
            else:
                real = os.path.join(here_real, entry.name)
            if real in walked:
                continue
            walked.add(real)
            if unit_dir is not None and unit_dir(path):
                found.append((path, None))
            else:
                stack.append((path, real))
    found.sort(key=lambda item: item[0])
    return found
