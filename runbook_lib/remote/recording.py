"""Recordings: the WS-Management exchanges of every operation, kept so one run against a real host becomes fixtures.

What is recorded is the SOAP envelope pywinrm sends and the one it gets back after NTLM message decryption: the
layer above HTTP, so no Authorization header and no NTLM token is ever seen, and credential values are scrubbed
besides (the evidence scrubber, every encoding it knows). One file per operation, ``<time>-<n>-<operation>.json``
(schema ``tls-runbook/recording/v1``), rewritten after each exchange so a run that dies leaves what it sent.

A replay puts the recording below the real reader: :class:`ReplayTransport` is a :class:`WinRMTransport` whose
pywinrm wire answers from the recording, so pywinrm's SOAP handling, the result reader, the facts loader and the
engine all run as they do against a host. The replay checks each request: its WS-Management action, the shell and
command it names, and the operation and arguments its script carries.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import urlsplit

import requests
from winrm.exceptions import InvalidCredentialsError, WinRMTransportError

from .. import __version__
from ..core.errors import InputError, one_line
from .scrub import Scrubber
from ..core.files import FileTooLarge, read_limited
from . import scripts
from .credentials import Credential
from .transport import OperationResult, WinRMTransport

SCHEMA = "tls-runbook/recording/v1"
MAX_RECORDING_BYTES = 20 * 1024 * 1024
_ACTION = re.compile(r"<(?:\w+:)?Action\b[^>]*>\s*([^<\s]+)\s*<")
_MESSAGE_ID = re.compile(r"<(?:\w+:)?MessageID\b[^>]*>\s*([^<\s]+)\s*<")
_RELATES_TO = re.compile(r"(<(?:\w+:)?RelatesTo\b[^>]*>)\s*[^<\s]+\s*(<)")
# Raised again on replay when the recording says the wire raised it (a lost connection, a refused logon).
_WIRE_ERRORS: dict[str, type[Exception]] = {
    "ConnectionError": requests.exceptions.ConnectionError,
    "ReadTimeout": requests.exceptions.ReadTimeout,
    "ConnectTimeout": requests.exceptions.ConnectTimeout,
    "SSLError": requests.exceptions.SSLError,
    "InvalidCredentialsError": InvalidCredentialsError,
}


class RecordingMismatch(InputError):
    """A recording does not fit the run replayed against it (another operation, arguments or request order)."""


@dataclass
class Exchange:
    """One request and what came back: a response (HTTP ``status``) or the name of the error the wire raised."""

    action: str
    request: str
    response: str | None
    status: int = 200
    error: str | None = None


@dataclass
class RecordedOperation:
    host: str
    endpoint: str
    operation: str
    args: dict
    recorded_at: str
    exchanges: list[Exchange] = field(default_factory=list)
    name: str = ""  # the file it was read from
    note: str | None = None  # e.g. that the host was the simulator

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, "tool_version": __version__, "note": self.note, "host": self.host,
                "endpoint": self.endpoint, "operation": self.operation, "args": self.args,
                "recorded_at": self.recorded_at,
                "exchanges": [{"action": e.action, "request": e.request, "response": e.response,
                               "status": e.status, "error": e.error} for e in self.exchanges]}


def _action(envelope: str) -> str:
    """The last segment of wsa:Action: Create, Command, Send, Receive, Signal, Delete."""
    match = _ACTION.search(envelope)
    return match.group(1).rsplit("/", 1)[-1] if match else "?"


# --- recording ------------------------------------------------------------------------------------------------
class Recorder:
    """Writes every operation a transport runs into ``folder``; credential values never reach the disk."""

    def __init__(self, folder: Path | str, secrets: Iterable[str] = (), note: str | None = None):
        self.folder, self.note = Path(folder), note
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create the recording folder {self.folder}: {exc.strerror or exc}") from None
        self.scrubber = Scrubber(secrets)
        self._numbers = itertools.count(1)

    def attach(self, protocol: Any, transport: WinRMTransport, operation: str, args: dict) -> None:
        """Route ``protocol``'s wire through a recording of this operation."""
        now = datetime.now(timezone.utc)
        recorded = RecordedOperation(transport.host, transport.endpoint, operation, args,
                                     now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), note=self.note)
        path = self.folder / f"{now:%Y%m%dT%H%M%S%f}Z-{next(self._numbers):03d}-{operation}.json"
        protocol.transport = _RecordingWire(protocol.transport, recorded, lambda: self._save(recorded, path))
        self._save(recorded, path)

    def _save(self, recorded: RecordedOperation, path: Path) -> None:
        data, _ = self.scrubber.scrub_bytes(json.dumps(recorded.to_dict(), indent=1).encode("utf-8") + b"\n")
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_bytes(data)
        temporary.replace(path)


def record(transport: WinRMTransport, folder: Path | str, note: str | None = None) -> Recorder:
    """Record every operation ``transport`` runs from now on into ``folder``."""
    credential: Credential | None = getattr(transport, "_credential", None)
    recorder = Recorder(folder, [credential.password] if credential and credential.password else [], note)
    transport.recorder = recorder
    return recorder


class _RecordingWire:
    """pywinrm's transport with every send_message recorded (the plaintext SOAP on both sides)."""

    def __init__(self, inner: Any, recorded: RecordedOperation, saved: Any):
        self._inner, self._recorded, self._saved = inner, recorded, saved

    def send_message(self, message: str | bytes) -> bytes:
        request = message.decode("utf-8") if isinstance(message, bytes) else message
        try:
            response = self._inner.send_message(message)
        except WinRMTransportError as exc:
            self._add(Exchange(_action(request), request, exc.response_text, exc.code))
            raise
        except Exception as exc:
            self._add(Exchange(_action(request), request, None, 0, type(exc).__name__))
            raise
        self._add(Exchange(_action(request), request, response.decode("utf-8", errors="replace")))
        return response

    def _add(self, exchange: Exchange) -> None:
        self._recorded.exchanges.append(exchange)
        self._saved()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


# --- reading --------------------------------------------------------------------------------------------------
def load_operation(path: Path) -> RecordedOperation:
    try:
        doc = json.loads(read_limited(path, MAX_RECORDING_BYTES).decode("utf-8"))
        if doc.get("schema") != SCHEMA:
            raise ValueError(f"not a {SCHEMA} file")
        exchanges = [Exchange(str(e["action"]), str(e["request"]), e["response"], int(e["status"]), e["error"])
                     for e in doc["exchanges"]]
        if not isinstance(doc["args"], dict) or doc["operation"] not in scripts.OPERATIONS:
            raise ValueError("operation or arguments missing")
        return RecordedOperation(str(doc["host"]), str(doc["endpoint"]), doc["operation"], doc["args"],
                                 str(doc["recorded_at"]), exchanges, path.name, doc.get("note"))
    except FileTooLarge as exc:
        raise InputError(f"recording {path.name} is {exc}") from None
    except OSError as exc:
        raise InputError(f"cannot read recording {path.name}: {exc.strerror or exc}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"recording {path.name}: {one_line(str(exc), 120) or type(exc).__name__}") from None


def load_host(folder: Path | str) -> list[RecordedOperation]:
    """One host's recorded operations, in the order they ran."""
    paths = sorted(Path(folder).glob("*.json"))
    if not paths:
        raise InputError(f"no recordings (*.json) in {folder}")
    return [load_operation(path) for path in paths]


def host_folders(folder: Path | str) -> list[Path]:
    """``folder`` itself when it holds recordings, else its subfolders that do (a ``run --record`` folder)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder")
    if any(folder.glob("*.json")):
        return [folder]
    found = sorted(p for p in folder.iterdir() if p.is_dir() and any(p.glob("*.json")))
    if not found:
        raise InputError(f"no recordings in {folder} or its subfolders")
    return found


# --- replaying ------------------------------------------------------------------------------------------------
class _Envelope:
    def __init__(self, text: str):
        self.text = text
        self.action = _action(text)
        match = _MESSAGE_ID.search(text)
        self.message_id = match.group(1) if match else None
        try:
            self.root = ET.fromstring(text)
        except ET.ParseError:
            raise RecordingMismatch(f"a {self.action} envelope is not XML") from None

    def _find(self, local: str) -> list[ET.Element]:
        return [node for node in self.root.iter() if node.tag.rsplit("}", 1)[-1] == local]

    @property
    def shell_id(self) -> str | None:
        for node in self._find("Selector"):
            if node.get("Name") == "ShellId":
                return (node.text or "").strip().upper()
        return None

    @property
    def command_id(self) -> str | None:
        for local in ("DesiredStream", "Stream", "Signal"):
            for node in self._find(local):
                if node.get("CommandId"):
                    return node.get("CommandId", "").upper()
        return None

    def command_line(self) -> str:
        parts = [node.text or "" for node in self._find("Command")]
        parts += [node.text or "" for node in self._find("Arguments")]
        return " ".join(parts)

    def stdin(self) -> bytes:
        return b"".join(base64.b64decode(node.text or "") for node in self._find("Stream"))


class _ReplayWire:
    """Answers pywinrm's requests for one operation from its recording, checking each request on the way."""

    def __init__(self, recorded: RecordedOperation):
        self.recorded = recorded
        self.position = 0
        self.requests = 0
        self.last_send: Exchange | None = None
        self.command_line: str | None = None
        self.stdin = bytearray()
        self.script_checked = False

    def _fail(self, problem: str) -> RecordingMismatch:
        return RecordingMismatch(f"recording {self.recorded.name or self.recorded.operation}: request "
                                 f"{self.requests}: {problem}")

    def _next(self, action: str) -> Exchange | None:
        """The recorded exchange for this request; None answers a Send chunk the recording split differently."""
        exchanges = self.recorded.exchanges
        while self.position < len(exchanges) and exchanges[self.position].action == "Send" and action != "Send":
            self.position += 1  # the script now travels in fewer stdin chunks
        if self.position < len(exchanges) and exchanges[self.position].action == action:
            self.position += 1
            return exchanges[self.position - 1]
        if action == "Send" and self.last_send is not None:
            return None  # more chunks now: every SendResponse is alike
        expected = exchanges[self.position].action if self.position < len(exchanges) else "the end of the recording"
        raise self._fail(f"the client sends {action}, the recording has {expected}")

    def send_message(self, message: str | bytes) -> bytes:
        self.requests += 1
        request = _Envelope(message.decode("utf-8") if isinstance(message, bytes) else message)
        exchange = self._next(request.action)
        if exchange is None:
            exchange = self.last_send
        else:
            recorded = _Envelope(exchange.request)
            if (request.shell_id, request.command_id) != (recorded.shell_id, recorded.command_id):
                raise self._fail(f"{request.action} names shell {request.shell_id} command {request.command_id}, the "
                                 f"recording {recorded.shell_id} {recorded.command_id}")
        self._follow_script(request)
        if request.action == "Send":
            self.last_send = exchange
        if exchange.error is not None:
            raise _WIRE_ERRORS.get(exchange.error, requests.exceptions.ConnectionError)(
                f"recorded {exchange.error}")
        response = _RELATES_TO.sub(lambda m: f"{m.group(1)}{request.message_id}{m.group(2)}", exchange.response or "")
        if exchange.status != 200:
            raise WinRMTransportError("http", exchange.status, response)
        return response.encode("utf-8")

    def _follow_script(self, request: _Envelope) -> None:
        """The operation and arguments the client's script carries must be the recorded ones."""
        if request.action == "Command":
            self.command_line = request.command_line()
        elif request.action == "Send":
            self.stdin += request.stdin()
        elif request.action in ("Receive", "Signal") and not self.script_checked and self.command_line is not None:
            self.script_checked = True
            try:
                declared = scripts.read_declaration(scripts.decode_invocation(self.command_line, bytes(self.stdin)
                                                                              or None))
            except InputError as exc:
                raise self._fail(f"the client's script does not decode: {exc}") from None
            if declared != (self.recorded.operation, self.recorded.args):
                raise self._fail(f"the client runs {declared[0]} with other arguments than the recording")

    def close_session(self) -> None:
        """Nothing to close: no connection was opened."""


class ReplayTransport(WinRMTransport):
    """A WinRM transport whose wire is a host's recording: every operation must come in the recorded order."""

    def __init__(self, recordings: list[RecordedOperation]):
        if not recordings:
            raise InputError("a replay needs at least one recorded operation")
        first = recordings[0]
        try:
            url = urlsplit(first.endpoint)
            port = url.port
        except ValueError:
            raise InputError(f"recording {first.name}: endpoint {first.endpoint[:80]!r} is not a URL") from None
        super().__init__(first.host, Credential("replay", "not-a-credential"), https=url.scheme == "https",
                         port=port, path=url.path or "wsman", connect_retries=0)
        self._sleep = lambda seconds: None
        self.recordings = list(recordings)
        self._wire: _ReplayWire | None = None

    def run(self, operation: str, args: dict) -> OperationResult:
        if not self.recordings:
            raise RecordingMismatch(f"the recording has no more operations; the client runs {operation}")
        recorded = self.recordings.pop(0)
        if (recorded.operation, recorded.args) != (operation, args):
            raise RecordingMismatch(f"recording {recorded.name}: the client runs {operation}, the recording has "
                                    f"{recorded.operation}" + (" with other arguments"
                                                               if recorded.operation == operation else ""))
        self._wire = _ReplayWire(recorded)
        return super().run(operation, args)

    def _protocol(self):
        protocol = super()._protocol()
        protocol.transport = self._wire
        return protocol

    def _translate(self, exc: Exception, operation: str, started: bool):
        """A recording that does not fit is said as such, not as a WinRM failure."""
        return exc if isinstance(exc, RecordingMismatch) else super()._translate(exc, operation, started)


# --- comparing ------------------------------------------------------------------------------------------------
VOLATILE = frozenset({"collected_at", "last_boot", "process_started", "pid"})  # differ between runs, say nothing
# about the host's TLS configuration


def differences(recorded: Any, other: Any, where: str = "result") -> list[str]:
    """Every field where two results differ, by name: ``result.registry[...\\Enabled].data: 0 != 1``."""
    if isinstance(recorded, dict) and isinstance(other, dict):
        return _paired(recorded, other, lambda key: f"{where}.{key}", skip=VOLATILE)
    if isinstance(recorded, list) and isinstance(other, list):
        mine, theirs = _keyed(recorded), _keyed(other)
        if mine is not None and theirs is not None:
            return _paired(mine, theirs, lambda key: f"{where}[{key}]")
        if len(recorded) != len(other):
            return [f"{where}: {len(recorded)} item(s) recorded, {len(other)} from the simulator"]
        return [d for i, (a, b) in enumerate(zip(recorded, other)) for d in differences(a, b, f"{where}[{i}]")]
    if recorded != other or type(recorded) is not type(other):
        return [f"{where}: recorded {one_line(repr(recorded), 80)}, simulator {one_line(repr(other), 80)}"]
    return []


def _paired(recorded: dict, other: dict, place, skip: frozenset | set = frozenset()) -> list[str]:
    """Differences between two mappings, key by key: what only one side has, then what differs under a key."""
    found = []
    for key in sorted(set(recorded) | set(other), key=str):
        if key in skip:
            continue
        if key not in other:
            found.append(f"{place(key)}: only in the recording")
        elif key not in recorded:
            found.append(f"{place(key)}: only in the simulator's answer")
        else:
            found += differences(recorded[key], other[key], place(key))
    return found



def _keyed(items: list) -> dict | None:
    """Lists of registry values and probes compare by what identifies an item, so one missing item is one line."""
    for keys in (("path", "name"), ("endpoint", "mode")):
        if all(isinstance(i, dict) and all(k in i for k in keys) for i in items):
            keyed = {"\\".join(str(i[k]) for k in keys): i for i in items}
            if len(keyed) == len(items):
                return keyed
    return None


# --- whole hosts ----------------------------------------------------------------------------------------------
@dataclass
class Replayed:
    """One recorded operation run again through the reader: its result, and for inspect the engine's verdict."""

    operation: RecordedOperation
    data: dict
    verdict: Any = None


def replay_host(folder: Path | str, profile: str = "recommended") -> list[Replayed]:
    """Every operation of one host's recording through WinRMTransport's reader; inspect results through the engine."""
    from ..core import facts as facts_module
    from ..core.engine import assess

    operations = load_host(folder)
    transport = ReplayTransport(operations)
    replayed = []
    for recorded in list(operations):
        data = transport.run(recorded.operation, recorded.args).data
        verdict = assess(facts_module.from_dict(data), profile) if recorded.operation == "inspect" else None
        replayed.append(Replayed(recorded, data, verdict))
    return replayed
