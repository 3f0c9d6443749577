"""The one place that runs external commands.

Every call takes an argv list (never a shell string), is logged as a pasteable
line with its duration, has a timeout, and turns a bad exit into a typed error
that carries the argv, the exit code and the output.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

log = logging.getLogger("kindslurm.process")

DEFAULT_TIMEOUT = 120.0
_OUTPUT_LIMIT = 4000


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    duration: float

    @property
    def output(self) -> str:
        """stdout and stderr together, for messages."""
        return "\n".join(part for part in (self.stdout.strip(), self.stderr.strip()) if part)


def _clip(text: str) -> str:
    text = text.strip()
    if len(text) <= _OUTPUT_LIMIT:
        return text
    return "[...]\n" + text[-_OUTPUT_LIMIT:]


class CommandError(Exception):
    """An external command failed; the message shows the command, its output and the fix."""

    def __init__(
        self,
        argv: Sequence[str],
        returncode: int | None,
        stdout: str = "",
        stderr: str = "",
        hint: str = "",
        reason: str = "",
    ) -> None:
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.hint = hint
        self.reason = reason or f"exited with code {returncode}"
        super().__init__(self.describe())

    @property
    def command(self) -> str:
        return shlex.join(self.argv)

    @property
    def output(self) -> str:
        return "\n".join(p for p in (self.stdout.strip(), self.stderr.strip()) if p)

    def describe(self) -> str:
        lines = [f"command failed ({self.reason}): {self.command}"]
        out = _clip(self.output)
        if out:
            lines.append("output:")
            lines.extend("  " + line for line in out.splitlines())
        if self.hint:
            lines.append(f"fix: {self.hint}")
        return "\n".join(lines)


class CommandNotFoundError(CommandError):
    """The program does not exist or is not executable."""


class CommandTimeoutError(CommandError):
    """The program ran longer than its timeout and was killed."""


def _not_runnable(argv: Sequence[str], err: OSError, hint: str) -> CommandNotFoundError:
    """The typed error for a program that could not be started."""
    if isinstance(err, PermissionError):
        return CommandNotFoundError(
            argv, None, stderr=str(err), reason="program not executable",
            hint=hint or f"make {argv[0]!r} executable for this user",
        )  # fmt: skip
    return CommandNotFoundError(
        argv, None, stderr=str(err), reason="program not found",
        hint=hint or f"install {argv[0]!r} or put it on PATH",
    )  # fmt: skip


def run(
    argv: Sequence[str],
    *,
    input: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    hint: str = "",
) -> CommandResult:
    """Run argv, wait for it, and return its result.

    With check=True a non-zero exit raises CommandError. A missing program
    always raises CommandNotFoundError, a timeout CommandTimeoutError.
    """
    argv = tuple(str(a) for a in argv)
    if not argv:
        raise ValueError("empty argv")
    start = time.monotonic()
    try:
        proc = subprocess.run(
            argv,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            stdin=None if input is not None else subprocess.DEVNULL,
            errors="replace",
        )
    except (FileNotFoundError, PermissionError) as err:
        raise _not_runnable(argv, err, hint) from err
    except subprocess.TimeoutExpired as err:
        raise CommandTimeoutError(
            argv,
            None,
            stdout=_text(err.stdout),
            stderr=_text(err.stderr),
            hint=hint,
            reason=f"timed out after {timeout:g} s",
        ) from err
    duration = time.monotonic() - start
    log.debug("%s  (exit %d, %.2f s)", shlex.join(argv), proc.returncode, duration)
    result = CommandResult(argv, proc.returncode, proc.stdout, proc.stderr, duration)
    if check and proc.returncode != 0:
        raise CommandError(argv, proc.returncode, proc.stdout, proc.stderr, hint=hint)
    return result


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    new_session: bool = True,
    stdin: int | IO[Any] | None = None,
    stdout: int | IO[Any] | None = None,
    stderr: int | IO[Any] | None = None,
    hint: str = "",
) -> subprocess.Popen[bytes]:
    """Start argv without waiting for it, for long-running interruptible children.

    With new_session=True (the default) the child leads its own session and
    process group: a Ctrl-C on our terminal does not reach it, and
    signal_group(proc.pid, ...) reaches it and everything it started.
    stdin/stdout/stderr default to ours. A missing program raises
    CommandNotFoundError like run().
    """
    argv = tuple(str(a) for a in argv)
    if not argv:
        raise ValueError("empty argv")
    log.debug("spawn: %s", shlex.join(argv))
    try:
        return subprocess.Popen(
            argv,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            start_new_session=new_session,
        )
    except (FileNotFoundError, PermissionError) as err:
        if isinstance(err, FileNotFoundError) and cwd is not None and not os.path.isdir(cwd):
            raise  # the working directory is missing, not the program
        raise _not_runnable(argv, err, hint) from err


def signal_group(pgid: int, signum: int) -> bool:
    """Send signum to process group pgid; False when the group no longer exists.

    Safe to call from a signal handler (one system call, no allocation of
    note, no logging).
    """
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    except PermissionError:
        # The pgid was reused by another user's processes: ours are gone.
        return False
    return True


def group_alive(pgid: int) -> bool:
    """True while a live (not zombie) process is left in group pgid.

    killpg(pgid, 0) also succeeds for zombies, and an init that reaps orphans
    slowly (seen: every ~2 s) would make every wait last that long; so the
    members' states are read from /proc when it is there.
    """
    if not signal_group(pgid, 0):
        return False
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 2 and fields[2] == str(pgid).encode() and fields[0] != b"Z":
            return True
    return False


def terminate_group(pgid: int, *, timeout: float, signum: int = signal.SIGTERM) -> bool:
    """Send signum to group pgid, wait up to timeout for it to go away, then SIGKILL it.

    Returns True when SIGKILL was needed. The group members are usually not our
    children (the leader is reaped by its Popen), so the wait polls with
    killpg(pgid, 0) instead of waitpid.
    """
    if not signal_group(pgid, signum):
        return False
    deadline = time.monotonic() + timeout
    delay = 0.005
    while time.monotonic() < deadline:
        if not group_alive(pgid):
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
    if not group_alive(pgid):
        return False
    log.debug("process group %d still alive after %g s: SIGKILL", pgid, timeout)
    signal_group(pgid, signal.SIGKILL)
    return True


def run_isolated(
    argv: Sequence[str],
    *,
    input: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    hint: str = "",
) -> CommandResult:
    """Like run(), but the child gets its own session and a timeout kills its whole group.

    For cleanup and other steps that must not be cut short by the Ctrl-C or
    SIGTERM aimed at us, and whose children (kind runs podman) must not
    outlive a timeout. Same results and errors as run().
    """
    argv = tuple(str(a) for a in argv)
    if not argv:
        raise ValueError("empty argv")
    start = time.monotonic()
    proc = spawn(
        argv,
        env=env,
        cwd=cwd,
        new_session=True,
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        hint=hint,
    )
    data = input.encode() if input is not None else None
    try:
        out, err = proc.communicate(data, timeout=timeout)
    except subprocess.TimeoutExpired:
        signal_group(proc.pid, signal.SIGKILL)
        try:
            # A grandchild that left the group may hold the pipes open: bounded.
            out, err = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired as late:
            proc.kill()
            proc.wait()
            out, err = late.stdout or b"", late.stderr or b""
        raise CommandTimeoutError(
            argv,
            None,
            stdout=_text(out),
            stderr=_text(err),
            hint=hint,
            reason=f"timed out after {timeout:g} s",
        ) from None
    duration = time.monotonic() - start
    returncode = proc.returncode
    log.debug("%s  (exit %d, %.2f s)", shlex.join(argv), returncode, duration)
    result = CommandResult(argv, returncode, _text(out), _text(err), duration)
    if check and returncode != 0:
        raise CommandError(argv, returncode, result.stdout, result.stderr, hint=hint)
    return result


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return data
