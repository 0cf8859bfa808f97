"""``tls-runbook scope``: the options, and where each result goes (stdout, ``-o``, beside a run folder).

Warnings (a CSV source, a test endpoint, Graph's waits, the device-code prompt) go to stderr, so stdout holds only
the report, or with ``--emit-limit`` only the ``--limit`` expression for ``tls-runbook run``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..core.errors import InputError
from .records import EVENT_TYPES


def add_parser(commands) -> None:
    p = commands.add_parser("scope", help="which hosts still sign in to Entra over legacy TLS (sign-in logs)",
                            description="Count legacy-TLS sign-ins and AADSTS1002016 failures in Entra sign-in logs, "
                                        "map them to inventory hosts, and compare them with a fleet run.")
    p.add_argument("sources", nargs="+", metavar="SOURCE",
                   help="a sign-in export (Entra JSON or CSV, Log Analytics JSON or CSV) or graph:[TENANT]")
    p.add_argument("--since", help="start: 2026-11-01, 2026-11-01T08:00:00Z, or 7d / 24h ago")
    p.add_argument("--until", help="end, in the same forms (default: open)")
    p.add_argument("--inventory", type=Path, help="map to hosts: tls_runbook_egress ranges and device names")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.add_argument("-o", "--output", type=Path, help="write the report here instead of stdout")
    p.add_argument("--redact", action="store_true", help="replace user names with a keyed hash")
    p.add_argument("--redact-key", metavar="REF", help="the hash key by reference (env:VARIABLE, keyring:...)")
    p.add_argument("--emit-limit", action="store_true", help="print only the --limit expression for tls-runbook run")
    p.add_argument("--after", type=Path, metavar="EVIDENCE_DIR",
                   help="a fleet run folder: legacy sign-ins before vs after its end, written beside it")
    g = p.add_argument_group("graph: sources (Microsoft Graph beta, Entra ID P1/P2)")
    g.add_argument("--sign-in-types", default=",".join(EVENT_TYPES), help="comma-separated subset of "
                                                                          + ",".join(EVENT_TYPES))
    g.add_argument("--client-id", default="", help="app registration (default for device code: Microsoft Graph "
                                                   "Command Line Tools)")
    g.add_argument("--client-secret", default="", metavar="REF", help="client secret by reference")
    g.add_argument("--client-certificate", default="", metavar="PATH", help="certificate with its key (PEM or PFX)")
    g.add_argument("--certificate-password", default="", metavar="REF", help="the PFX/key password by reference")
    g.add_argument("--token", default="", metavar="REF", help="an access token acquired elsewhere, by reference")
    p.set_defaults(run=run)


def _notify(text: str) -> None:
    print(f"tls-runbook: {text}", file=sys.stderr, flush=True)


def _write(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    try:
        partial.write_text(text, encoding="utf-8", newline="")
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise InputError(f"cannot write {path}: {exc.strerror or type(exc).__name__}") from None


def run(args: argparse.Namespace) -> int:
    from ..remote.inventory import load_inventory
    from . import after as after_module
    from .auth import GraphAuth
    from .collect import make_report, redactor
    from .mapping import limit_expression
    from .records import Window
    from .sources import GRAPH_PREFIX

    if args.emit_limit and not args.inventory:
        raise InputError("--emit-limit needs --inventory: the expression names inventory hosts")
    if args.after and not args.inventory:
        raise InputError("--after needs --inventory: sign-ins are compared per host of the run")
    if args.redact_key and not args.redact:
        raise InputError("--redact-key goes with --redact")
    tenants = [spec[len(GRAPH_PREFIX):].strip() for spec in args.sources if spec.startswith(GRAPH_PREFIX)]
    auth = GraphAuth(tenant=tenants[0] if tenants else "", client_id=args.client_id, client_secret=args.client_secret,
                     client_certificate=args.client_certificate, certificate_password=args.certificate_password,
                     token=args.token)
    if not tenants and auth.method != "device_code" or not tenants and args.client_id:
        raise InputError("--client-id, --client-secret, --client-certificate and --token are for graph: sources")
    auth.validate()
    window = Window.parse(args.since, args.until)
    event_types = tuple(t.strip() for t in args.sign_in_types.split(",") if t.strip())
    inventory = load_inventory(args.inventory) if args.inventory else None
    if args.after:
        after_module.check_run_folder(args.after)
    report = make_report(args.sources, window, inventory, auth=auth, event_types=event_types,
                         redact=redactor(args.redact_key) if args.redact else None, notify=_notify)
    if args.after:
        result = after_module.compare(report, args.after, inventory)
        path = after_module.write_beside(result, args.after)
        for note in result.notes:
            _notify(f"note: {note}")
        rendered = {"json": result.dumps, "csv": result.to_csv}.get(args.format, result.render_text)()
        _notify(f"wrote {path}")
    else:
        rendered = {"json": report.dumps, "csv": report.to_csv}.get(args.format, report.render_text)()
    if args.output:
        _write(args.output, rendered if rendered.endswith("\n") else rendered + "\n")
    if args.emit_limit:
        print(limit_expression(inventory, report.host_names))
    elif args.output:
        print(f"wrote {args.output}: {report.legacy_records} legacy sign-in(s), {report.failures} AADSTS1002016, "
              f"{len(report.hosts)} host(s)")
    else:
        sys.stdout.write(rendered if rendered.endswith("\n") else rendered + "\n")
    return 0
