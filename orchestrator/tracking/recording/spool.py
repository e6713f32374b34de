"""The last-resort buffer: when Redis cannot take an event, the process appends
it to a local file; a drainer on the same host moves the files back into the
outbox later. Appends lock the file and check it is still the one at the path,
so a drainer taking a file (rename, then lock) never loses a concurrent append."""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

SUFFIX = ".jsonl"
TAKEN = ".taken"


class Spool:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def _own_path(self) -> Path:
        return self.directory / f"{socket.gethostname()}-{os.getpid()}{SUFFIX}"

    def append(self, line: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._own_path()
        data = (line.replace("\n", " ") + "\n").encode()
        while True:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    same = os.fstat(fd).st_ino == os.stat(path).st_ino
                except FileNotFoundError:
                    same = False
                if same:  # not taken by a drainer meanwhile
                    os.write(fd, data)  # in the kernel's hands: survives this process dying
                    return
            finally:
                os.close(fd)  # also releases the lock

    def pending_files(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.iterdir() if p.name.endswith((SUFFIX, TAKEN)))

    def drain(self, push: Callable[[list[str]], None]) -> int:
        """Hands every spooled line to `push` (which raises if it could not keep
        them) and removes what was pushed; returns the number of lines moved."""
        moved = 0
        for path in self.pending_files():
            taken = path if path.name.endswith(TAKEN) else path.with_name(f"{path.name}.{time.time_ns()}{TAKEN}")
            if taken != path:
                try:
                    path.rename(taken)
                except FileNotFoundError:  # another drainer took it
                    continue
            moved += self._drain_file(taken, push)
        return moved

    @staticmethod
    def _drain_file(path: Path, push: Callable[[list[str]], None]) -> int:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return 0
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another drainer holds it: leave it
            except BlockingIOError:
                return 0
            with os.fdopen(os.dup(fd), "r", encoding="utf-8") as handle:
                lines = [line.rstrip("\n") for line in handle if line.strip()]
            if lines:
                push(lines)  # raises: the file stays for the next attempt
            path.unlink(missing_ok=True)
            return len(lines)
        finally:
            os.close(fd)
