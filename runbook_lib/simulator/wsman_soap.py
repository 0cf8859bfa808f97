"""SOAP envelopes of WS-Management, read by namespace and written in the shapes real Windows hosts send.

Requests are read by namespace URI only: pywinrm and pypsrp use different prefixes, pywinrm sends a fake ``a:To``
and neither agrees on ``mustUnderstand``, so nothing beyond what an operation needs is validated.
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

SOAP = "http://www.w3.org/2003/05/soap-envelope"
ADDRESSING = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
WSMAN = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
MS_WSMAN = "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd"
TRANSFER = "http://schemas.xmlsoap.org/ws/2004/09/transfer"
SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
WSMAN_FAULT = "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault"

CMD_RESOURCE_URI = f"{SHELL}/cmd"
ANONYMOUS = f"{ADDRESSING}/role/anonymous"
FAULT_ACTION = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault"

ACTION_CREATE = f"{TRANSFER}/Create"
ACTION_DELETE = f"{TRANSFER}/Delete"
ACTION_COMMAND = f"{SHELL}/Command"
ACTION_RECEIVE = f"{SHELL}/Receive"
ACTION_SEND = f"{SHELL}/Send"
ACTION_SIGNAL = f"{SHELL}/Signal"

STATE_RUNNING = f"{SHELL}/CommandState/Running"
STATE_DONE = f"{SHELL}/CommandState/Done"

_NAMESPACE_DECLARATIONS = (
    f'xmlns:s="{SOAP}" xmlns:a="{ADDRESSING}" xmlns:x="{TRANSFER}" xmlns:w="{WSMAN}" '
    f'xmlns:rsp="{SHELL}" xmlns:p="{MS_WSMAN}"'
)


def q(namespace: str, local: str) -> str:
    return f"{{{namespace}}}{local}"


@dataclass(frozen=True)
class SoapFault:
    """One row of the fault catalogue: the fields pywinrm and pypsrp turn into exceptions."""

    code: str  # "Sender" or "Receiver"
    subcode: str  # qualified with the prefixes of the response envelope, e.g. "w:TimedOut"
    reason: str
    wsman_code: int


class FaultRaised(Exception):
    """An operation answers with a SOAP fault (HTTP 500) instead of its response."""

    def __init__(self, fault: SoapFault):
        super().__init__(fault.reason)
        self.fault = fault


# Codes as real hosts send them (see the wire notes, section 1.5).
def timed_out() -> SoapFault:
    return SoapFault(
        "Receiver",
        "w:TimedOut",
        "The WS-Management service cannot complete the operation within the time specified in OperationTimeout.",
        2150858793,
    )


def invalid_selectors(what: str, value: str) -> SoapFault:
    return SoapFault(
        "Sender",
        "w:InvalidSelectors",
        f"The request for the Windows Remote Shell with {what} {value} failed because it was not found on the "
        "server. The shell or command may have ended, or the server restarted. Create a new shell and retry.",
        2150858843,
    )


def shells_quota_exceeded(limit: int) -> SoapFault:
    """MaxShellsPerUser reached (ERROR_WSMAN_QUOTA_MAX_SHELLS), in the words real hosts send."""
    return SoapFault(
        "Receiver",
        "w:InternalError",
        f"The WS-Management service cannot process the request. This user is allowed a maximum number of {limit} "
        "concurrent shells, which has been exceeded. Close existing shells or raise the quota for this user. ",
        2150859173,
    )


def invalid_parameter(reason: str) -> SoapFault:
    return SoapFault("Sender", "w:InvalidParameter", reason, 87)


def schema_validation_error(reason: str) -> SoapFault:
    return SoapFault("Sender", "w:SchemaValidationError", reason, 2150858817)


def internal_error(reason: str) -> SoapFault:
    return SoapFault("Receiver", "w:InternalError", reason, 0x80004005)


def access_denied(reason: str) -> SoapFault:
    return SoapFault("Sender", "w:AccessDenied", reason, 5)


class MalformedRequest(Exception):
    """The body is not a WS-Management envelope this server can answer; it becomes a SchemaValidationError fault."""


@dataclass(frozen=True)
class SoapRequest:
    action: str
    message_id: str | None
    resource_uri: str
    selectors: dict[str, str]
    options: dict[str, str]
    body: ET.Element
    operation_timeout_s: float | None = None  # w:OperationTimeout: how long the client lets one request wait
    user: str = ""  # the authenticated account, set by the server (per-user quotas)


def _text(element: ET.Element | None) -> str:
    return (element.text or "").strip() if element is not None else ""


def parse_request(data: bytes) -> SoapRequest:
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise MalformedRequest(f"the request is not well-formed XML: {exc}") from None
    header = root.find(q(SOAP, "Header"))
    body = root.find(q(SOAP, "Body"))
    if root.tag != q(SOAP, "Envelope") or header is None or body is None:
        raise MalformedRequest("the request is not a SOAP 1.2 envelope with a Header and a Body")
    message_id = header.find(q(ADDRESSING, "MessageID"))
    selectors = {
        selector.get("Name", ""): _text(selector)
        for selector in header.iterfind(f"{q(WSMAN, 'SelectorSet')}/{q(WSMAN, 'Selector')}")
    }
    options = {
        option.get("Name", "").upper(): _text(option)
        for option in header.iterfind(f"{q(WSMAN, 'OptionSet')}/{q(WSMAN, 'Option')}")
    }
    timeout = re.fullmatch(r"PT(\d+(?:\.\d+)?)S", _text(header.find(q(WSMAN, "OperationTimeout"))))
    return SoapRequest(
        action=_text(header.find(q(ADDRESSING, "Action"))),
        # echoed character for character: pypsrp compares RelatesTo as a string
        message_id=message_id.text if message_id is not None else None,
        resource_uri=_text(header.find(q(WSMAN, "ResourceURI"))),
        selectors=selectors,
        options=options,
        body=body,
        operation_timeout_s=float(timeout.group(1)) if timeout else None,
    )


def _envelope(action: str, relates_to: str | None, body: str, extra_namespaces: str = "") -> bytes:
    relates = f"<a:RelatesTo>{escape(relates_to)}</a:RelatesTo>" if relates_to is not None else ""
    return (
        f'<s:Envelope xml:lang="en-US" {_NAMESPACE_DECLARATIONS}{extra_namespaces}>'
        f"<s:Header><a:Action>{escape(action)}</a:Action>"
        f"<a:MessageID>uuid:{str(uuid.uuid4()).upper()}</a:MessageID>"
        f"<a:To>{ANONYMOUS}</a:To>{relates}</s:Header>"
        f"<s:Body>{body}</s:Body></s:Envelope>"
    ).encode("utf-8")


def response(request: SoapRequest, body: str) -> bytes:
    return _envelope(request.action + "Response", request.message_id, body)


def fault_response(fault: SoapFault, relates_to: str | None, machine: str) -> bytes:
    body = (
        f"<s:Fault><s:Code><s:Value>s:{fault.code}</s:Value>"
        f"<s:Subcode><s:Value>{fault.subcode}</s:Value></s:Subcode></s:Code>"
        f'<s:Reason><s:Text xml:lang="en-US">{escape(fault.reason)}</s:Text></s:Reason>'
        f"<s:Detail><f:WSManFault Code={quoteattr(str(fault.wsman_code))} Machine={quoteattr(machine)}>"
        f"<f:Message>{escape(fault.reason)}</f:Message></f:WSManFault></s:Detail></s:Fault>"
    )
    return _envelope(FAULT_ACTION, relates_to, body, f' xmlns:f="{WSMAN_FAULT}"')

