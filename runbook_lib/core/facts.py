"""Host facts, schema ``tls-runbook/host-facts/v1``: what inspection collects from one Windows host.

The JSON shape is a public contract, ``core/schemas/host-facts.schema.json``: the remote ``inspect`` script, the
simulator and other tools produce it, so loading is strict and every problem is reported as one line naming the
field (``facts: os.version: ...``). The checks here come first because their messages say what was expected in the
operator's words; the schema then refuses whatever they let through, so a document loads only if it keeps both.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import FactsError
from .files import FileTooLarge, read_limited
from .json_schema import schema_problem
from .registry import REG_TYPES, Registry, RegistryValue, data_problem, name_problem, path_problem
from .strict_json import FieldReader, reject_constant

SCHEMA = "tls-runbook/host-facts/v1"
MAX_FACTS_BYTES = 10 * 1024 * 1024  # real facts are a few KB; a bigger file is a mistake or an attack
PRODUCT_TYPES = ("workstation", "server", "domain_controller")
ARCHITECTURES = ("x64", "x86", "arm64")
PROBE_MODES = ("tcp", "default", "tls12", "session", "app")
PREFERENCE_ACTIONS = ("C", "R", "U", "D")  # Group Policy Preferences: create, replace, update, delete
TARGETING = ("none", "uncertain")
# Used with fullmatch only: '$' would also accept a name ending in a newline. ASCII: '\d' is no Arabic digit.
_HOST_RE = re.compile(r"(?=.{1,253}\Z)[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?", re.ASCII)
_VERSION_RE = re.compile(r"\d{1,5}\.\d{1,5}\.\d{1,6}(\.\d{1,6})?", re.ASCII)
_KB_RE = re.compile(r"KB\d{4,8}", re.ASCII)
_ENDPOINT_RE = re.compile(r"[A-Za-z0-9_.-]{1,253}:\d{1,5}", re.ASCII)
MAX_NOTE_CHARS = 2000


def host_problem(host: object) -> str | None:
    """Why a host name cannot be used, or None: names end up in file names, URLs and evidence."""
    if not isinstance(host, str):
        return f"expected a string, got {type(host).__name__}"
    if not _HOST_RE.fullmatch(host):
        return "must be a DNS name or IPv4 address (letters, digits, '-', '_', '.'; at most 253 characters)"
    return None


@dataclass(frozen=True)
class OsInfo:
    caption: str
    version: str
    service_pack: int
    product_type: str
    architecture: str
    last_boot: str | None = None  # UTC, when Windows last started (optional in v1)

    @property
    def version_tuple(self) -> tuple[int, int, int]:
        major, minor, build = (int(part) for part in self.version.split(".")[:3])
        return major, minor, build


@dataclass(frozen=True)
class PowerShellInfo:
    windows_powershell: str | None
    pwsh: str | None

    @property
    def windows_powershell_major(self) -> int | None:
        return int(self.windows_powershell.split(".")[0]) if self.windows_powershell else None


@dataclass(frozen=True)
class Probe:
    """One probe as the host's script reported it; whether Entra accepts it is decided in runbook_lib.core.acceptance.

    ``ok`` means the TLS handshake completed (mode ``tcp``: TCP connected; mode ``app``: an HTTP answer came back).
    The fields after ``error`` are optional additions to host-facts v1: a record without them is a v1 record.
    """

    endpoint: str
    mode: str
    ok: bool
    protocol: str | None = None
    cipher: str | None = None
    error: str | None = None
    connected: bool | None = None  # TCP connected
    hash: int | None = None  # SslStream.HashAlgorithm as its ALG_ID number
    key_exchange: int | None = None  # SslStream.KeyExchangeAlgorithm as its ALG_ID number
    certificate_errors: tuple[str, ...] | None = None  # SslPolicyErrors names; () when the certificate validated
    certificate_chain: tuple[str, ...] | None = None  # X509ChainStatusFlags names of the chain's problems
    url: str | None = None  # mode app: the token endpoint requested
    security_protocol: int | None = None  # mode app: ServicePointManager.SecurityProtocol of the requesting process
    web_status: str | None = None  # mode app: WebExceptionStatus name (Success, ProtocolError, TrustFailure, ...)
    http_status: int | None = None  # mode app: the HTTP status of the answer
    aadsts: int | None = None  # mode app: the AADSTS code in the answer
    aadsts_text: str | None = None  # mode app: the first line of the answer's error_description

    def to_dict(self) -> dict:
        """The v1 fields always, each optional field only when the host reported it (an app probe always reports
        its request's fields, null where there was no answer: the probe-record schema requires them)."""
        doc = asdict(self)
        reported = APP_PROBE_FIELDS if self.mode == "app" else ()
        for name in OPTIONAL_PROBE_FIELDS:
            if doc[name] is None and name not in reported:
                del doc[name]
            elif isinstance(doc[name], tuple):
                doc[name] = list(doc[name])
        return doc


@dataclass(frozen=True)
class Observed:
    security_protocol: dict[str, int] = field(default_factory=dict)
    probes: tuple[Probe, ...] = ()

    def to_dict(self) -> dict:
        return {"security_protocol": dict(self.security_protocol), "probes": [p.to_dict() for p in self.probes]}


@dataclass(frozen=True)
class RsopSetting:
    """One administrative-template (Registry.pol) setting as RSoP logged it (``RSOP_RegistryPolicySetting``).

    ``name`` None is a ``**delvals.`` entry: the policy deletes every value of the key. ``type``/``data`` are None
    when the logged bytes could not be decoded (or the entry is a deletion).
    """

    path: str
    name: str | None
    type: str | None
    data: Any
    deleted: bool
    gpo_id: str
    gpo_name: str | None
    precedence: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PreferenceItem:
    """One Group Policy Preferences registry item from the Group Policy client's history cache.

    ``name`` None is an item on the key itself. ``targeting`` is "uncertain" whenever the item (or its collection)
    carries item-level targeting: whether it applies to this host is not evaluated, never guessed.
    """

    path: str
    name: str | None
    action: str
    type: str | None
    data: Any
    disabled: bool
    targeting: str
    filters: tuple[str, ...]
    run_once: bool
    gpo_id: str
    gpo_name: str | None

    def to_dict(self) -> dict:
        return {**asdict(self), "filters": list(self.filters)}


@dataclass(frozen=True)
class GroupPolicy:
    """Where Group Policy delivers the values inspection read: RSoP (administrative templates) and GPP items.

    ``*_available`` False means the source could not be read (``*_reason`` says why): "not available", which is
    not the same as "no policy".
    """

    rsop_available: bool
    rsop_reason: str | None
    rsop: tuple[RsopSetting, ...]
    preferences_available: bool
    preferences_reason: str | None
    preferences: tuple[PreferenceItem, ...]

    def to_dict(self) -> dict:
        return {"rsop": {"available": self.rsop_available, "reason": self.rsop_reason,
                         "settings": [s.to_dict() for s in self.rsop]},
                "preferences": {"available": self.preferences_available, "reason": self.preferences_reason,
                                "items": [i.to_dict() for i in self.preferences]}}


@dataclass(frozen=True)
class HostFacts:
    host: str
    simulated: bool
    collected_at: str
    os: OsInfo
    hotfixes: tuple[str, ...]
    powershell: PowerShellInfo
    registry: Registry
    observed: Observed | None = None
    note: str | None = None  # a person's word on where the facts come from; nothing decides on it
    group_policy: GroupPolicy | None = None

    def has_hotfix(self, kb: str) -> bool:
        return kb.upper() in (h.upper() for h in self.hotfixes)

    def with_registry(self, registry: Registry) -> "HostFacts":
        """The same host after registry writes; observations belong to the old state, so they are dropped."""
        return HostFacts(self.host, self.simulated, self.collected_at, self.os, self.hotfixes, self.powershell,
                         registry, None, self.note, self.group_policy)

    def to_dict(self) -> dict:
        doc: dict[str, Any] = {
            "schema": SCHEMA,
            "host": self.host,
            "simulated": self.simulated,
            "collected_at": self.collected_at,
            "os": {"caption": self.os.caption, "version": self.os.version, "service_pack": self.os.service_pack,
                   "product_type": self.os.product_type, "architecture": self.os.architecture,
                   **({"last_boot": self.os.last_boot} if self.os.last_boot else {})},
            "hotfixes": list(self.hotfixes),
            "powershell": {"windows_powershell": self.powershell.windows_powershell, "pwsh": self.powershell.pwsh},
            "registry": [value.to_dict() for value in self.registry],
        }
        if self.observed is not None:
            doc["observed"] = self.observed.to_dict()
        if self.note is not None:
            doc["note"] = self.note
        if self.group_policy is not None:
            doc["group_policy"] = self.group_policy.to_dict()
        return doc

    def dumps(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    def save(self, path: Path | str) -> None:
        Path(path).write_text(self.dumps(), encoding="utf-8")


# --- loading ------------------------------------------------------------------------------------------------
def load(path: Path | str) -> HostFacts:
    path = Path(path)
    try:
        raw = read_limited(path, MAX_FACTS_BYTES)
    except FileTooLarge as exc:
        raise FactsError("", f"{path.name} is {exc}") from None
    except OSError as exc:
        raise FactsError("", f"cannot read {path.name}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FactsError("", f"not UTF-8 text (byte {exc.start})") from None
    return loads(text)


def loads(text: str) -> HostFacts:
    if len(text) > MAX_FACTS_BYTES:
        raise FactsError("", f"larger than {MAX_FACTS_BYTES // (1024 * 1024)} MiB")
    try:
        doc = json.loads(text, parse_constant=reject_constant)
    except json.JSONDecodeError as exc:
        raise FactsError("", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise FactsError("", "not valid JSON: nested too deeply") from None
    except ValueError as exc:
        raise FactsError("", f"not valid JSON: {exc}") from None
    return from_dict(doc)


def from_dict(doc: Any) -> HostFacts:
    top = FieldReader(doc, "", ("schema", "host", "simulated", "collected_at", "os", "hotfixes", "powershell",
                            "registry"), optional=("observed", "note", "group_policy"))
    schema = top.get("schema", (str,))
    if schema != SCHEMA:
        raise FactsError("schema", f"unknown schema {schema[:80]!r} (expected {SCHEMA!r})")
    host = top.get("host", (str,))
    top.check("host", host_problem(host))
    simulated = top.get("simulated", (bool,))
    collected_at = top.string("collected_at", max_len=40)
    top.check("collected_at", _timestamp_problem(collected_at))
    host_facts = HostFacts(
        host=host,
        simulated=simulated,
        collected_at=collected_at,
        os=_os(top.get("os", (dict,))),
        hotfixes=_hotfixes(top, top.get("hotfixes", (list,))),
        powershell=_powershell(top.get("powershell", (dict,))),
        registry=_registry(top.get("registry", (list,))),
        observed=_observed(top.get("observed", (dict,), optional=True)),
        note=top.string("note", optional=True, max_len=MAX_NOTE_CHARS),
        group_policy=_group_policy(top.get("group_policy", (dict,), optional=True)),
    )
    problem = schema_problem("host-facts", doc)
    if problem:
        raise FactsError(*problem)
    return host_facts


def _timestamp_problem(value: str) -> str | None:
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return "expected an ISO 8601 timestamp such as 2026-11-25T10:00:00Z"
    return None


def _os(doc: Any) -> OsInfo:
    r = FieldReader(doc, "os", ("caption", "version", "service_pack", "product_type", "architecture"),
                optional=("last_boot",))
    caption = r.string("caption", max_len=200)
    version = r.get("version", (str,))
    if not _VERSION_RE.fullmatch(version):
        raise FactsError("os.version", f"expected a Windows version such as 6.1.7601, got {version[:40]!r}")
    service_pack = r.get("service_pack", (int,))
    if not 0 <= service_pack <= 9:
        raise FactsError("os.service_pack", "expected 0 to 9")
    product_type = r.get("product_type", (str,))
    if product_type not in PRODUCT_TYPES:
        raise FactsError("os.product_type", f"expected one of {', '.join(PRODUCT_TYPES)}")
    architecture = r.get("architecture", (str,))
    if architecture not in ARCHITECTURES:
        raise FactsError("os.architecture", f"expected one of {', '.join(ARCHITECTURES)}")
    last_boot = r.get("last_boot", (str,), optional=True)
    if last_boot is not None:
        r.check("last_boot", _timestamp_problem(last_boot))
    return OsInfo(caption, version, service_pack, product_type, architecture, last_boot)


def _hotfixes(top: FieldReader, items: list) -> tuple[str, ...]:
    for index, item in enumerate(items):
        if not isinstance(item, str) or not _KB_RE.fullmatch(item.upper()):
            raise FactsError(f"hotfixes[{index}]", "expected a KB number such as KB3140245")
    return tuple(item.upper() for item in items)


def _powershell(doc: Any) -> PowerShellInfo:
    r = FieldReader(doc, "powershell", ("windows_powershell", "pwsh"))
    versions = {}
    for name in ("windows_powershell", "pwsh"):
        value = r.get(name, (str,), nullable=True)
        if value is not None and not re.fullmatch(r"\d{1,3}(\.\d{1,6}){1,3}", value, re.ASCII):
            raise FactsError(f"powershell.{name}", f"expected a version such as 5.1.14409.1005, got {value[:40]!r}")
        versions[name] = value
    return PowerShellInfo(**versions)


def _registry(items: list) -> Registry:
    values = []
    for index, item in enumerate(items):
        where = f"registry[{index}]"
        r = FieldReader(item, where, ("path", "name", "type", "data", "policy"))
        path = r.get("path", (str,))
        r.check("path", path_problem(path))
        name = r.get("name", (str,))
        r.check("name", name_problem(name))
        reg_type = r.get("type", (str,))
        if reg_type not in REG_TYPES:
            raise FactsError(f"{where}.type", f"unknown registry type {reg_type[:40]!r} (expected one of "
                                              f"{', '.join(REG_TYPES)})")
        if "data" not in item:
            raise FactsError(f"{where}.data", "missing field")
        r.check("data", data_problem(reg_type, item["data"]))
        policy = r.get("policy", (bool,))
        values.append(RegistryValue(path, name, reg_type, item["data"], policy))
    return Registry(values)


def _observed(doc: Any) -> Observed | None:
    if doc is None:
        return None
    r = FieldReader(doc, "observed", (), optional=("security_protocol", "probes"))
    security_protocol = r.get("security_protocol", (dict,), optional=True) or {}
    for bitness, value in security_protocol.items():
        if bitness not in ("x64", "x86"):
            raise FactsError(f"observed.security_protocol.{bitness[:20]}", "unknown field (expected x64 or x86)")
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFF:
            raise FactsError(f"observed.security_protocol.{bitness}", "expected a SecurityProtocolType integer")
    probes = []
    for index, item in enumerate(r.get("probes", (list,), optional=True) or []):
        probes.append(probe_from_dict(item, f"observed.probes[{index}]"))
    return Observed(dict(security_protocol), tuple(probes))


_PROBE_TEXT_FIELDS = ("protocol", "cipher", "error", "url", "web_status", "aadsts_text")
_PROBE_INT_FIELDS = ("hash", "key_exchange", "security_protocol", "http_status", "aadsts")
_PROBE_LIST_FIELDS = ("certificate_errors", "certificate_chain")
APP_PROBE_FIELDS = ("url", "security_protocol", "web_status", "http_status", "aadsts")
OPTIONAL_PROBE_FIELDS = ("connected", "hash", "key_exchange", "certificate_errors", "certificate_chain", "url",
                         "security_protocol", "web_status", "http_status", "aadsts", "aadsts_text")


def probe_from_dict(item: Any, where: str) -> Probe:
    """One probe record, field by field; ``core/schemas/probe-record.schema.json`` holds it to what a script knows."""
    p = FieldReader(item, where, ("endpoint", "mode", "ok"), optional=("protocol", "cipher", "error",
                                                                   *OPTIONAL_PROBE_FIELDS))
    endpoint = p.get("endpoint", (str,))
    if not _ENDPOINT_RE.fullmatch(endpoint):
        raise FactsError(p.field("endpoint"), "expected host:port")
    mode = p.get("mode", (str,))
    if mode not in PROBE_MODES:
        raise FactsError(p.field("mode"), f"expected one of {', '.join(PROBE_MODES)}")
    values: dict[str, Any] = {name: p.get(name, (str,), optional=True) for name in _PROBE_TEXT_FIELDS}
    values.update({name: p.get(name, (int,), optional=True) for name in _PROBE_INT_FIELDS})
    for name in _PROBE_LIST_FIELDS:
        items = p.get(name, (list,), optional=True)
        if items is not None and not all(isinstance(i, str) for i in items):
            raise FactsError(p.field(name), "expected a list of strings")
        values[name] = None if items is None else tuple(items)
    return Probe(endpoint, mode, p.get("ok", (bool,)), connected=p.get("connected", (bool,), optional=True),
                 **values)


def _group_policy(doc: Any) -> GroupPolicy | None:
    if doc is None:
        return None
    r = FieldReader(doc, "group_policy", ("rsop", "preferences"))
    rsop = FieldReader(r.get("rsop", (dict,)), "group_policy.rsop", ("available", "reason", "settings"))
    prefs = FieldReader(r.get("preferences", (dict,)), "group_policy.preferences", ("available", "reason", "items"))
    settings = tuple(_rsop_setting(item, f"group_policy.rsop.settings[{index}]")
                     for index, item in enumerate(rsop.get("settings", (list,))))
    items = tuple(_preference_item(item, f"group_policy.preferences.items[{index}]")
                  for index, item in enumerate(prefs.get("items", (list,))))
    return GroupPolicy(rsop.get("available", (bool,)), rsop.string("reason", nullable=True), settings,
                       prefs.get("available", (bool,)), prefs.string("reason", nullable=True), items)


def _policy_value(r: FieldReader) -> tuple[str, str | None, str | None, Any]:
    """Path, name (None: the whole key), type and data shared by RSoP settings and GPP items."""
    path = r.get("path", (str,))
    r.check("path", path_problem(path))
    name = r.get("name", (str,), nullable=True)
    if name is not None:
        r.check("name", name_problem(name))
    reg_type = r.get("type", (str,), nullable=True)
    if reg_type is not None and reg_type not in REG_TYPES:
        raise FactsError(r.field("type"), f"unknown registry type {reg_type[:40]!r} (expected one of "
                                          f"{', '.join(REG_TYPES)} or null)")
    if "data" not in r.doc:
        raise FactsError(r.field("data"), "missing field")
    data = r.doc["data"]
    if data is not None:
        if reg_type is None:
            raise FactsError(r.field("data"), "data needs a type")
        r.check("data", data_problem(reg_type, data))
    return path, name, reg_type, data


def _rsop_setting(doc: Any, where: str) -> RsopSetting:
    r = FieldReader(doc, where, ("path", "name", "type", "data", "deleted", "gpo_id", "gpo_name", "precedence"))
    path, name, reg_type, data = _policy_value(r)
    deleted = r.get("deleted", (bool,))
    if name is None and not deleted:
        raise FactsError(r.field("name"), "only a deletion may name the whole key (null)")
    precedence = r.get("precedence", (int,))
    if not 1 <= precedence <= 10_000:
        raise FactsError(r.field("precedence"), "expected 1 (the winning GPO) or more")
    return RsopSetting(path, name, reg_type, data, deleted, r.string("gpo_id", max_len=1000),
                       r.string("gpo_name", nullable=True, max_len=300), precedence)


def _preference_item(doc: Any, where: str) -> PreferenceItem:
    r = FieldReader(doc, where, ("path", "name", "action", "type", "data", "disabled", "targeting", "filters",
                             "run_once", "gpo_id", "gpo_name"))
    path, name, reg_type, data = _policy_value(r)
    action = r.get("action", (str,))
    if action not in PREFERENCE_ACTIONS:
        raise FactsError(r.field("action"), f"expected one of {', '.join(PREFERENCE_ACTIONS)}")
    targeting = r.get("targeting", (str,))
    if targeting not in TARGETING:
        raise FactsError(r.field("targeting"), f"expected one of {', '.join(TARGETING)}")
    filters = r.get("filters", (list,))
    if len(filters) > 50 or not all(isinstance(f, str) and re.fullmatch(r"[A-Za-z]{1,60}", f) for f in filters):
        raise FactsError(r.field("filters"), "expected at most 50 item-level targeting element names")
    return PreferenceItem(path, name, action, reg_type, data, r.get("disabled", (bool,)), targeting,
                          tuple(filters), r.get("run_once", (bool,)), r.string("gpo_id", max_len=1000),
                          r.string("gpo_name", nullable=True, max_len=300))
