"""What a WinRS shell on a Windows host does with a command, short of running it.

The host model decides what a command prints; this module makes that text look as it would on the wire from a real
host (shell code page, CRLF, CLIXML on stderr, cmd.exe's command-line limit) so the runbook's decoding and error
handling meet real shapes.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import contextlib
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Iterator, Protocol
from xml.sax.saxutils import escape

# cmd.exe refuses longer command lines; WinRS runs every command through cmd /c.
CMD_LINE_LIMIT = 8191
CMD_LINE_TOO_LONG = "The command line is too long."
DEFAULT_CODEPAGE = 437

_CLIXML_HEADER = "#< CLIXML\r\n"
_CLIXML_OPEN = '<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'


@dataclass
class CommandResult:
    """What a command printed, as text: the server encodes it in the shell's code page."""

    stdout: str
    stderr: str = ""
    exit_code: int = 0


class CommandHandler(Protocol):
    """The host model: called once per command, possibly from several connection threads at once."""

    def __call__(self, command_line: str, stdin: bytes) -> CommandResult: ...


class DropConnection(Exception):
    """Raised by a handler to make the server close the TCP connection without answering (simulates a network drop mid-operation)."""


class UnknownCodepage(ValueError):
    """WINRS_CODEPAGE named a code page Python cannot encode to."""


def codec_for_codepage(codepage: int) -> str:
    name = "utf-8" if codepage == 65001 else f"cp{codepage}"
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise UnknownCodepage(f"code page {codepage} is not supported by the simulator") from None


def to_wire_bytes(text: str, codec: str) -> bytes:
    """Console programs write CRLF and replace what the code page cannot show with '?', as cp437 hosts do."""
    crlf = re.sub(r"(?<!\r)\n", "\r\n", text)
    return crlf.encode(codec, errors="replace")


# --- PowerShell conventions the host model needs ---------------------------------------------------------------

_ENCODED_COMMAND_FLAG = "encodedcommand"


def _is_encoded_command_flag(token: str) -> bool:
    """PowerShell accepts any unambiguous prefix of -EncodedCommand (from -e on) and the alias -ec, with - or /."""
    if len(token) < 2 or token[0] not in "-/":
        return False
    name = token[1:].lower()
    return name == "ec" or _ENCODED_COMMAND_FLAG.startswith(name)


def decode_encoded_command(command_line: str) -> str | None:
    """The script of a ``powershell ... -EncodedCommand <b64>`` command line, or None for anything else.

    This is how ``Session.run_ps`` ships scripts, so a host model recognises runbook scripts with it. Other flags
    (-NoProfile, -ExecutionPolicy Bypass, ...) may precede the encoded command.
    """
    tokens = command_line.split()
    if not tokens:
        return None
    program = tokens[0].strip('"').replace("/", "\\").rsplit("\\", 1)[-1].lower()
    if program not in ("powershell", "powershell.exe"):
        return None
    for flag, value in zip(tokens[1:], tokens[2:]):
        if _is_encoded_command_flag(flag):
            try:
                return base64.b64decode(value, validate=True).decode("utf-16-le")
            except (binascii.Error, UnicodeDecodeError):
                return None
    return None


def _open_constructs(text: str) -> bool:
    """Whether PowerShell's parser would ask for more input: an open bracket, string or comment at the end.

    A small lexer, enough for the shapes the runbook sends and the mistakes that would break them: quotes ('' and
    backtick escapes, here-strings, $( ) inside double quotes), # and <# #> comments, brackets, and a trailing
    backtick or pipe.
    """
    modes = ["code"]  # "code", "sq", "dq", "hsq", "hdq", "block" (comment); "sub" is code inside "$( )"
    brackets: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch, mode = text[i], modes[-1]
        if mode in ("code", "sub"):
            if ch == "#":
                end = text.find("\n", i)
                i = n if end < 0 else end
                continue
            if text.startswith("<#", i):
                modes.append("block")
                i += 2
                continue
            if text.startswith("@'\n", i) or text.startswith("@\"\n", i):
                modes.append("hsq" if ch == "@" and text[i + 1] == "'" else "hdq")
                i += 3
                continue
            if ch == "'":
                modes.append("sq")
            elif ch == '"':
                modes.append("dq")
            elif ch in "({[":
                brackets.append(ch)
            elif ch in ")}]":
                if brackets[-1:] == ["$"]:  # the ")" that ends a "$(" inside a double-quoted string
                    if ch == ")":
                        brackets.pop()
                        modes.pop()
                elif brackets:
                    brackets.pop()
            elif ch == "`":
                i += 1
            i += 1
            continue
        if mode == "block":
            if text.startswith("#>", i):
                modes.pop()
                i += 1
        elif mode == "sq":
            if ch == "'":
                if text.startswith("''", i):
                    i += 1
                else:
                    modes.pop()
        elif mode == "dq":
            if ch == "`":
                i += 1
            elif text.startswith("$(", i):
                modes.append("sub")
                brackets.append("$")
                i += 1
            elif ch == '"':
                if text.startswith('""', i):
                    i += 1
                else:
                    modes.pop()
        elif mode in ("hsq", "hdq"):
            closing = "\n'@" if mode == "hsq" else '\n"@'
            if text.startswith(closing, i):
                modes.pop()
                i += len(closing) - 1
        i += 1
    if modes != ["code"] or brackets:
        return True
    tail = text.rstrip()
    return tail.endswith("`") or tail.endswith("|")


def console_statements(text: str) -> tuple[list[str], str]:
    """How ``powershell -Command -`` cuts stdin into statements, as at a console prompt.

    A line that completes a statement on its own runs at once; a statement left open continues on the next lines
    and runs only when an empty line follows (even if it is still open: then it fails to parse); an empty line
    outside a statement does nothing. What is still pending at the end of the input never runs; it is returned
    second, '' when nothing was pending.
    """
    statements: list[str] = []
    pending: list[str] = []
    for line in text.split("\n"):
        if pending:
            if line.strip():
                pending.append(line)
            else:
                statements.append("\n".join(pending))
                pending = []
        elif line.strip():
            if _open_constructs(line):
                pending = [line]
            else:
                statements.append(line)
    return statements, "\n".join(pending)


def statement_parses(statement: str) -> bool:
    """A statement the console submitted while still open is a parse error (e.g. "Missing closing '}'")."""
    return not _open_constructs(statement)


_CLIXML_NEEDS_ESCAPE = re.compile(r"[\x00-\x1f]|_(?=x[0-9A-Fa-f]{4}_)")


def _clixml_string(text: str) -> str:
    """PowerShell's serializer writes control characters and look-alike escapes as _xHHHH_."""
    escaped = _CLIXML_NEEDS_ESCAPE.sub(lambda m: f"_x{ord(m.group()):04X}_", text)
    return escape(escaped)


_PROGRESS_RECORD = (
    '<Obj S="progress" RefId="0"><TN RefId="0"><T>System.Management.Automation.PSCustomObject</T>'
    "<T>System.Object</T></TN><MS><I64 N=\"SourceId\">1</I64><PR N=\"Record\">"
    "<AV>Preparing modules for first use.</AV><AI>0</AI><Nil /><PI>-1</PI><PC>-1</PC><T>Completed</T>"
    "<SR>-1</SR><SD> </SD></PR></MS></Obj>"
)


def clixml_error(message: str, *, with_progress_noise: bool = False) -> str:
    """stderr of a PowerShell script that wrote ``message`` as an error (pair it with exit code 1).

    One ``S`` element per line, as powershell.exe writes an error record; ``with_progress_noise`` prepends the
    progress record real hosts emit on a first module load, so callers see both in one CLIXML document.
    """
    lines = message.replace("\r\n", "\n").split("\n")
    errors = "".join(f'<S S="Error">{_clixml_string(line + chr(13) + chr(10))}</S>' for line in lines)
    noise = _PROGRESS_RECORD if with_progress_noise else ""
    return f"{_CLIXML_HEADER}{_CLIXML_OPEN}{noise}{errors}</Objs>"


def clixml_progress_noise() -> str:
    """stderr of a script that succeeded but loaded a module: progress-only CLIXML, which pywinrm leaves undecoded."""
    return f"{_CLIXML_HEADER}{_CLIXML_OPEN}{_PROGRESS_RECORD}</Objs>"


# --- shell and command state ----------------------------------------------------------------------------------


def new_windows_guid() -> str:
    """WinRS writes shell and command ids as upper-case GUIDs."""
    return str(uuid.uuid4()).upper()


class ProcessKilled(Exception):
    """Raised inside a host model's code when its process was terminated (shell deleted, command signalled)."""


class Process:
    """A command's process on the simulated host: the host model runs in a thread of its own, as a real process
    runs on its own, so it outlives the client's connection and is ended only by a shell Delete or a terminate
    Signal (WinRS puts a shell's processes in one job object and ends the job), or by finishing."""

    def __init__(self) -> None:
        self._killed = threading.Event()
        self.done = threading.Event()
        self.result: CommandResult | None = None
        self.error: BaseException | None = None

    def kill(self) -> None:
        self._killed.set()

    @property
    def alive(self) -> bool:
        return not self.done.is_set() and not self._killed.is_set()

    def check(self) -> None:
        """Host models call this between steps: a killed process stops there, with its writes so far."""
        if self._killed.is_set():
            raise ProcessKilled()

    def sleep(self, seconds: float) -> None:
        if self._killed.wait(seconds):
            raise ProcessKilled()


_running = threading.local()


def current_process() -> Process:
    """The process the calling host-model code runs in (a fresh one outside any server, which nobody kills)."""
    process = getattr(_running, "process", None)
    return process if process is not None else Process()


@contextlib.contextmanager
def process_scope() -> Iterator[Process]:
    """The current process, or, when a host model is called directly (no server), one that ends with the call."""
    process = getattr(_running, "process", None)
    if process is not None:
        yield process
        return
    process = _running.process = Process()
    try:
        yield process
    finally:
        _running.process = None
        process.done.set()


@dataclass
class Command:
    command_line: str
    timeouts_before_output: int
    stdin: bytearray = field(default_factory=bytearray)
    stdin_closed: bool = False
    process: Process | None = None
    stdout: bytes | None = None
    stderr: bytes = b""
    exit_code: int = 0
    stdout_sent: int = 0
    stderr_sent: int = 0
    # Two Receives for one command (a client retrying on a new connection) must not start the process twice.
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def has_run(self) -> bool:
        return self.stdout is not None

    def start(self, handler: CommandHandler, codec: str) -> Process:
        """Start the process once (call with ``lock`` held); it runs the host model in its own thread."""
        if self.process is None:
            process = self.process = Process()
            threading.Thread(target=self._run, args=(process, handler, codec), daemon=True,
                             name=f"process-{self.command_line[:20]}").start()
        return self.process

    def _run(self, process: Process, handler: CommandHandler, codec: str) -> None:
        _running.process = process
        try:
            if len(self.command_line) > CMD_LINE_LIMIT:
                process.result = CommandResult(stdout="", stderr=CMD_LINE_TOO_LONG + "\r\n", exit_code=1)
            else:
                process.result = handler(self.command_line, bytes(self.stdin))
        except ProcessKilled:
            process.result = CommandResult(stdout="", exit_code=1)
        except BaseException as exc:  # noqa: BLE001 - handed to the Receive that waits for it
            process.error = exc
        finally:
            _running.process = None
            process.done.set()

    def collect(self, codec: str) -> None:
        """Take the finished process's output, in the shell's code page (call with ``lock`` held)."""
        assert self.process is not None and self.process.result is not None
        result = self.process.result
        self.stderr = to_wire_bytes(result.stderr, codec)
        self.exit_code = result.exit_code
        self.stdout = to_wire_bytes(result.stdout, codec)

    def take_output(self, budget: int) -> tuple[bytes, bytes]:
        """The next slice of stdout then stderr, at most ``budget`` bytes together, as one Receive carries."""
        assert self.stdout is not None
        stdout = self.stdout[self.stdout_sent : self.stdout_sent + budget]
        self.stdout_sent += len(stdout)
        stderr = self.stderr[self.stderr_sent : self.stderr_sent + budget - len(stdout)]
        self.stderr_sent += len(stderr)
        return stdout, stderr

    @property
    def finished(self) -> bool:
        """All output handed out: the Receive that sees this reports Done with the End markers."""
        return self.stdout is not None and self.stdout_sent >= len(self.stdout) and self.stderr_sent >= len(self.stderr)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()


@dataclass
class Shell:
    shell_id: str
    codepage: int
    codec: str
    user: str = ""
    commands: dict[str, Command] = field(default_factory=dict)
    last_used: float = field(default_factory=time.monotonic)

    def end_processes(self) -> None:
        for command in list(self.commands.values()):
            command.kill()
