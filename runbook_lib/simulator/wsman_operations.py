"""The WS-Management shell operations a simulated listener answers once a request is authenticated and
decrypted: Create, Command, Send, Receive, Signal and Delete on the Windows shell resource, with WinRM's quotas,
output budgets and faults. :class:`~runbook_lib.simulator.wsman.WSManServer` mixes these in; this module holds
no HTTP or authentication.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import logging
import time

from runbook_lib.simulator import wsman_soap
from runbook_lib.simulator.wsman_shells import (DEFAULT_CODEPAGE, Command, DropConnection, Process, Shell,
                                                UnknownCodepage, codec_for_codepage, new_windows_guid)
from runbook_lib.simulator.wsman_soap import SHELL, FaultRaised, SoapRequest, q

log = logging.getLogger("runbook_lib.simulator.wsman")

# One Receive carries at most this much output; larger output takes several Receives, as on a real host.
RECEIVE_BUDGET = 32 * 1024
# Within one Receive, output is split into Stream elements of this size, which clients must concatenate.
STREAM_PIECE = 8 * 1024
# How long a Receive waits for output when the client names no OperationTimeout (WinRM's MaxTimeoutms default).
DEFAULT_OPERATION_TIMEOUT_S = 60.0
_SIGNALS = {f"{SHELL}/signal/{name}".lower() for name in ("terminate", "ctrl_c", "ctrl_break")}


class ShellOperations:
    """The SOAP half of :class:`~runbook_lib.simulator.wsman.WSManServer`: every method here reads and changes the
    server's shells, quotas and faults, which the server's constructor sets up."""

    def _soap(self, body: bytes, *, encrypted_or_tls: bool, user: str) -> tuple[int, bytes]:
        relates_to = None
        try:
            if self.strict and not encrypted_or_tls:
                raise FaultRaised(
                    wsman_soap.access_denied(
                        "The WinRM service refused an unencrypted request: unencrypted traffic is disabled in the "
                        "service configuration (AllowUnencrypted=false). Use HTTPS or Negotiate with message encryption."
                    )
                )
            try:
                soap = wsman_soap.parse_request(body)
            except wsman_soap.MalformedRequest as exc:
                raise FaultRaised(wsman_soap.schema_validation_error(str(exc))) from None
            relates_to = soap.message_id
            if self._drop_due():
                raise DropConnection()
            if self._http_500_due():
                raise FaultRaised(wsman_soap.internal_error("The WS-Management service encountered an internal error."))
            return 200, self._dispatch(dataclasses.replace(soap, user=user))
        except FaultRaised as raised:
            return 500, wsman_soap.fault_response(raised.fault, relates_to, self.computer_name)

    def _dispatch(self, soap: SoapRequest) -> bytes:
        if soap.resource_uri.lower() != wsman_soap.CMD_RESOURCE_URI.lower():
            raise FaultRaised(
                wsman_soap.invalid_parameter(
                    f"The resource URI {soap.resource_uri!r} is not served here: this host simulates WinRS cmd shells only."
                )
            )
        operations = {
            wsman_soap.ACTION_CREATE: self._create,
            wsman_soap.ACTION_COMMAND: self._command,
            wsman_soap.ACTION_SEND: self._send_stdin,
            wsman_soap.ACTION_RECEIVE: self._receive,
            wsman_soap.ACTION_SIGNAL: self._signal,
            wsman_soap.ACTION_DELETE: self._delete,
        }
        operation = operations.get(soap.action)
        if operation is None:
            raise FaultRaised(
                wsman_soap.SoapFault(
                    "Sender", "a:ActionNotSupported", f"The action {soap.action!r} is not supported by this service.", 87
                )
            )
        return wsman_soap.response(soap, operation(soap))

    def _shell(self, soap: SoapRequest) -> Shell:
        shell_id = soap.selectors.get("ShellId", "")
        self._end_idle_shells()
        with self._state:
            shell = self._shells.get(shell_id.upper())
        if shell is None:
            raise FaultRaised(wsman_soap.invalid_selectors("ShellId", shell_id))
        shell.last_used = time.monotonic()
        return shell

    def _end_idle_shells(self) -> None:
        """WinRS deletes a shell its client has not used for the idle timeout (180 s on WinRM 2.0), and ends the
        processes in it; until then it counts against the user's shells."""
        cutoff = time.monotonic() - self.quotas.shell_idle_timeout_s
        with self._state:
            idle = [shell for shell in self._shells.values() if shell.last_used < cutoff]
            for shell in idle:
                self._shells.pop(shell.shell_id, None)
        for shell in idle:
            shell.end_processes()

    def _command_of(self, shell: Shell, command_id: str | None) -> Command:
        with self._state:
            command = shell.commands.get((command_id or "").upper())
        if command is None:
            raise FaultRaised(wsman_soap.invalid_selectors("CommandId", command_id or "(none)"))
        return command

    def _create(self, soap: SoapRequest) -> str:
        codepage_text = soap.options.get("WINRS_CODEPAGE", str(DEFAULT_CODEPAGE))
        try:
            codepage = int(codepage_text)
            codec = codec_for_codepage(codepage)
        except (ValueError, UnknownCodepage):
            raise FaultRaised(wsman_soap.invalid_parameter(f"WINRS_CODEPAGE {codepage_text!r} is not a usable code page.")) from None
        shell = Shell(shell_id=new_windows_guid(), codepage=codepage, codec=codec, user=soap.user)
        self._end_idle_shells()
        with self._state:
            limit = self.quotas.max_shells_per_user
            if sum(1 for other in self._shells.values() if other.user == soap.user) >= limit:
                self.quota_faults += 1
                raise FaultRaised(wsman_soap.shells_quota_exceeded(limit))
            self._shells[shell.shell_id] = shell
        shell_xml = (
            f"<rsp:Shell><rsp:ShellId>{shell.shell_id}</rsp:ShellId>"
            f"<rsp:ResourceUri>{wsman_soap.CMD_RESOURCE_URI}</rsp:ResourceUri>"
            "<rsp:IdleTimeOut>PT7200.000S</rsp:IdleTimeOut>"
            "<rsp:InputStreams>stdin</rsp:InputStreams><rsp:OutputStreams>stdout stderr</rsp:OutputStreams>"
            "<rsp:ShellRunTime>P0DT0H0M0S</rsp:ShellRunTime><rsp:ShellInactivity>P0DT0H0M0S</rsp:ShellInactivity>"
            "</rsp:Shell>"
        )
        return (
            f"<x:ResourceCreated><a:Address>{self.url}</a:Address><a:ReferenceParameters>"
            f"<w:ResourceURI>{wsman_soap.CMD_RESOURCE_URI}</w:ResourceURI>"
            f'<w:SelectorSet><w:Selector Name="ShellId">{shell.shell_id}</w:Selector></w:SelectorSet>'
            f"</a:ReferenceParameters></x:ResourceCreated>{shell_xml}"
        )

    def _command(self, soap: SoapRequest) -> str:
        shell = self._shell(soap)
        command_line = soap.body.find(q(SHELL, "CommandLine"))
        if command_line is None:
            raise FaultRaised(wsman_soap.schema_validation_error("The Command request has no rsp:CommandLine."))
        parts = [command_line.findtext(q(SHELL, "Command"), default="")]
        parts += [argument.text or "" for argument in command_line.iterfind(q(SHELL, "Arguments"))]
        command_id = (command_line.get("CommandId") or new_windows_guid()).upper()
        with self._state:
            timeouts = self.faults.receive_timeouts
            shell.commands[command_id] = Command(command_line=" ".join(parts), timeouts_before_output=timeouts)
        return f"<rsp:CommandResponse><rsp:CommandId>{command_id}</rsp:CommandId></rsp:CommandResponse>"

    def _send_stdin(self, soap: SoapRequest) -> str:
        shell = self._shell(soap)
        for stream in soap.body.iterfind(f"{q(SHELL, 'Send')}/{q(SHELL, 'Stream')}"):
            command = self._command_of(shell, stream.get("CommandId"))
            try:
                data = base64.b64decode(stream.text or "", validate=True)
            except binascii.Error:
                raise FaultRaised(wsman_soap.invalid_parameter("The stdin stream is not base64.")) from None
            with command.lock:
                command.stdin += data
                if stream.get("End", "").lower() == "true":
                    command.stdin_closed = True
                    command.start(self.handler, shell.codec)  # the process has its whole input: it runs now
        return "<rsp:SendResponse/>"

    def _receive(self, soap: SoapRequest) -> str:
        shell = self._shell(soap)
        desired = soap.body.find(f"{q(SHELL, 'Receive')}/{q(SHELL, 'DesiredStream')}")
        command_id = (desired.get("CommandId") if desired is not None else None) or ""
        command = self._command_of(shell, command_id)
        with command.lock:
            if command.timeouts_before_output > 0:
                command.timeouts_before_output -= 1
                raise FaultRaised(wsman_soap.timed_out())
            process = command.start(self.handler, shell.codec)  # no stdin end seen (run_ps): it starts now
        # Like WinRS, a Receive waits for output up to the client's OperationTimeout, then answers TimedOut.
        if not process.done.wait(soap.operation_timeout_s or DEFAULT_OPERATION_TIMEOUT_S):
            raise FaultRaised(wsman_soap.timed_out())
        self._raise_handler_error(process)
        with command.lock:
            if not command.has_run:
                command.collect(shell.codec)
            stdout, stderr = command.take_output(RECEIVE_BUDGET)
            finished = command.finished
            exit_code = command.exit_code
        parts = [self._streams("stdout", command_id, stdout), self._streams("stderr", command_id, stderr)]
        if finished:
            parts += [
                f'<rsp:Stream Name="stdout" CommandId="{command_id}" End="true"></rsp:Stream>',
                f'<rsp:Stream Name="stderr" CommandId="{command_id}" End="true"></rsp:Stream>',
                f'<rsp:CommandState CommandId="{command_id}" State="{wsman_soap.STATE_DONE}">'
                f"<rsp:ExitCode>{exit_code}</rsp:ExitCode></rsp:CommandState>",
            ]
        else:
            parts.append(f'<rsp:CommandState CommandId="{command_id}" State="{wsman_soap.STATE_RUNNING}"/>')
        return f"<rsp:ReceiveResponse>{''.join(parts)}</rsp:ReceiveResponse>"

    @staticmethod
    def _streams(name: str, command_id: str, data: bytes) -> str:
        return "".join(
            f'<rsp:Stream Name="{name}" CommandId="{command_id}">'
            f"{base64.b64encode(data[start : start + STREAM_PIECE]).decode()}</rsp:Stream>"
            for start in range(0, len(data), STREAM_PIECE)
        )

    def _raise_handler_error(self, process: Process) -> None:
        error = process.error
        if error is None:
            return
        if isinstance(error, DropConnection):
            raise DropConnection()
        # A bug in the host model must be loud in the test that meets it, not a hang or a fake success.
        log.error("%s: command handler failed", self.computer_name, exc_info=error)
        raise FaultRaised(
            wsman_soap.internal_error(f"The simulated host failed to run the command: {type(error).__name__}.")
        )

    def _signal(self, soap: SoapRequest) -> str:
        shell = self._shell(soap)
        signal = soap.body.find(q(SHELL, "Signal"))
        command_id = signal.get("CommandId") if signal is not None else None
        code = (signal.findtext(q(SHELL, "Code"), default="") if signal is not None else "").strip()
        self._command_of(shell, command_id)
        if code.lower() not in _SIGNALS:
            raise FaultRaised(wsman_soap.invalid_parameter(f"The signal code {code!r} is not supported."))
        with self._state:
            command = shell.commands.pop((command_id or "").upper(), None)
        if command is not None:
            command.kill()  # terminate ends the process if it still runs
        return "<rsp:SignalResponse/>"

    def _delete(self, soap: SoapRequest) -> str:
        shell = self._shell(soap)
        with self._state:
            self._shells.pop(shell.shell_id, None)
        shell.end_processes()  # WinRS ends the shell's job object: every process still running in it dies
        return ""

