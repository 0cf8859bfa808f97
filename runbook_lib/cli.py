"""``tls-runbook``: the command line. Thin: every command calls the same functions a notebook calls.

Exit codes: 0 success (whether or not a host is affected), 1 a host or run failed, 2 bad input. Errors are one
line on stderr, never a traceback, never a credential.
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from pathlib import Path
from typing import Callable, Sequence

from . import __version__
from .core import facts as facts_module
from .core.engine import DEFAULT_PROFILE, assess
from .core.errors import InputError, RunbookError, one_line
from .core.files import output_file, output_folder
from .core.plan import RemediationPlan
from .fleet.canary import MAX_CANARIES
from .fleet.canary import PER_CAPTION as CANARY_PER_CAPTION
from .remote.transport import AUTH_METHODS
from .remote.target import DEFAULT_ENDPOINTS
from .core.verdict import PROFILES

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
# Errors a notebook run reports by name: these mean bad input, as they do when raised here.
_BAD_INPUT_ERRORS = frozenset(cls.__name__ for cls in (InputError, *InputError.__subclasses__()))


_WEEK_S = 7 * 24 * 3600


def _bounded(kind: type, low: float, high: float) -> Callable[[str], float]:
    """An argparse type: a finite number of ``kind`` from ``low`` to ``high`` (``nan``, ``inf`` and negatives are
    refused with the bounds in the message)."""
    def parse(text: str):
        try:
            value = kind(text)
        except (ValueError, OverflowError):
            noun = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{one_line(repr(text), 40)} is not {noun}") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(f"must be a number from {low:g} to {high:g}")
        return value
    return parse


def _canary(text: str) -> int | str:
    """``--canary N``; argparse also passes the constant of a bare ``--canary`` through here."""
    return text if text == CANARY_PER_CAPTION else _bounded(int, 1, MAX_CANARIES)(text)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line and exit code 2, like every other bad input."""

    def error(self, message: str):  # type: ignore[override]
        raise InputError(message)


def _cmd_assess(args: argparse.Namespace) -> int:
    verdict = assess(facts_module.load(args.facts), args.profile)
    if args.format == "json":
        sys.stdout.write(verdict.dumps())
    else:
        print(verdict.render_text(colour=sys.stdout.isatty()))
    return EXIT_OK


def _cmd_plan(args: argparse.Namespace) -> int:
    output_file(args.reg_out, "--reg-out")
    output_file(args.rollback_out, "--rollback-out")
    if args.reg_out.resolve() == args.rollback_out.resolve():
        raise InputError("--reg-out and --rollback-out name the same file; the rollback would overwrite the fix")
    host_facts = facts_module.load(args.facts)
    verdict = assess(host_facts, args.profile)
    plan = RemediationPlan.from_verdict(verdict, host_facts)
    try:
        plan.write(args.reg_out, args.rollback_out)
    except OSError as exc:
        raise InputError(f"cannot write {exc.filename}: {exc.strerror}") from None
    print(f"{len(plan.changes)} change(s), restart: {plan.restart}; wrote {args.reg_out} and {args.rollback_out}")
    if verdict.blockers:
        print("blocked by: " + ", ".join(verdict.blockers))
    return EXIT_OK


def _target(args: argparse.Namespace):
    from .remote.target import connect

    target = connect(args.target, inventory=args.inventory, credential=args.credential, auth=args.auth,
                     ca_trust_path=args.ca_trust_path)
    if args.record:
        from .remote.recording import record

        record(target.transport, args.record / target.name)
    return target


def _add_record_option(parser: argparse.ArgumentParser) -> None:
    """Any command that talks to hosts can record; see runbook_lib.remote.recording."""
    parser.add_argument("--record", type=Path, metavar="DIR",
                        help="save every WinRM request and response (decrypted SOAP, credentials removed) in "
                             "DIR/<host>, for replay as test fixtures")


def _cmd_inspect(args: argparse.Namespace) -> int:
    from .runbook.operations import inspect_host

    if args.output:
        output_file(args.output, "-o")
    host_facts = inspect_host(_target(args), args.endpoint or DEFAULT_ENDPOINTS)
    if args.output:
        try:
            host_facts.save(args.output)
        except OSError as exc:
            raise InputError(f"cannot write {one_line(str(args.output), 120)}: {exc.strerror or exc}") from None
    else:
        sys.stdout.write(host_facts.dumps())
    return EXIT_OK


def _cmd_probe(args: argparse.Namespace) -> int:
    from .runbook.operations import probe_host

    report = probe_host(_target(args), args.endpoint or DEFAULT_ENDPOINTS)
    print(report.render_text())
    return EXIT_OK if report.ok else EXIT_FAILED


def _cmd_check(args: argparse.Namespace) -> int:
    from .runbook.check import check_host

    report = check_host(_target(args), args.endpoint or DEFAULT_ENDPOINTS)
    print(report.render_text(colour=sys.stdout.isatty()))
    return EXIT_OK if report.ok else EXIT_FAILED


def _cmd_simulate(args: argparse.Namespace) -> int:
    from .remote.credentials import simulator_credential
    from .simulator import fleet
    from .simulator.profile import builtin_profile, builtin_profile_names

    if args.list:
        for name in builtin_profile_names():
            print(f"{name:34} {builtin_profile(name).description}")
        return EXIT_OK
    if args.fleet is None and not args.profile:
        raise InputError("simulate needs --profile NAME, --fleet DIR or --list")
    profiles = fleet.load_profiles(args.fleet) if args.fleet is not None else [builtin_profile(args.profile)]
    credential = simulator_credential()
    options = dict(port=args.port, auth=args.auth, https=args.https, strict=args.strict)
    accounts = [(credential.username, credential.password)]
    if args.fleet is not None:
        nodes = fleet.SimulatedFleet(profiles, accounts, **options).start().nodes
    else:
        nodes = [fleet.start_node(profiles[0], accounts, address=args.address, **options)]
    try:
        for node in nodes:  # the first line is the endpoint URL, for scripts that start the simulator
            extra = [node.name] if len(nodes) > 1 else []
            extra += [f"ca={node.server.ca_path}"] if args.https else []
            print("  ".join([node.url, *extra]), flush=True)
        print("SIMULATED Windows host(s) running; press Ctrl-C to stop.", file=sys.stderr, flush=True)
        _wait_for_interrupt()
    finally:
        for node in nodes:
            node.stop()
    return EXIT_OK


def _wait_for_interrupt() -> None:
    """Block until Ctrl-C or SIGTERM; SIGTERM becomes KeyboardInterrupt so the listeners stop cleanly."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass


_RESUME_KEEPS = ("limit", "notebooks", "profile", "apply", "reboot", "parallel", "in_flight", "timeout", "out",
                 "executor", "scheduler", "record", "canary")


def _cmd_run(args: argparse.Namespace) -> int:
    from .fleet.report import render_text
    from .fleet.runner import RunOptions, resume_fleet, run_fleet
    from .fleet.signing import load_signing_key

    key = load_signing_key(args.signing_key) if args.signing_key else None
    if args.resume is not None:
        defaults = build_parser().parse_args(["run", "--resume", "x"])
        changed = [f"--{name}" for name in _RESUME_KEEPS if getattr(args, name) != getattr(defaults, name)]
        if changed:
            raise InputError(f"--resume continues the run with its own parameters; drop {', '.join(changed)}")
        run = resume_fleet(args.resume, inventory_path=args.inventory, notebooks_dir=args.notebooks_dir,
                           signing_key=key, expected_key=_expected_key(args))
    else:
        if args.inventory is None:
            raise InputError("run needs --inventory FILE (or --resume DIR to continue a partial run)")
        options = RunOptions(notebooks=tuple(n.strip() for n in args.notebooks.split(",")), profile=args.profile,
                             apply=args.apply, reboot=args.reboot, parallel=args.parallel,
                             in_flight=args.in_flight, timeout_s=args.timeout,
                             limit=args.limit, executor=args.executor, scheduler=args.scheduler,
                             record=str(args.record.resolve()) if args.record else None, canary=args.canary)
        run = run_fleet(args.inventory, options, args.out, notebooks_dir=args.notebooks_dir, signing_key=key)
    print(render_text(run.rows))
    if run.stopped:
        print(run.stopped)
    print("\n".join(run.verify.lines()))
    print(f"Summary: {run.root / 'summary.html'}")
    print("\n".join(run.key_lines()))
    if run.interrupted:
        print(f"tls-runbook: interrupted: continue with tls-runbook run --resume {run.root}", file=sys.stderr)
    return run.exit_code if run.verify.ok else EXIT_FAILED


def _expected_key(args: argparse.Namespace) -> str | None:
    from .fleet.signing import expected_fingerprint

    return expected_fingerprint(args.expect_key) if getattr(args, "expect_key", None) else None


def _cmd_evidence_verify(args: argparse.Namespace) -> int:
    from .fleet import evidence

    manifest = evidence.load_manifest(args.folder)
    secrets, notes = evidence.credentials_for_scan(manifest.get("credential_references", []))
    result = evidence.verify(args.folder, secrets, expected_key=_expected_key(args), scan_notes=notes)
    print("\n".join(result.lines()))
    return EXIT_OK if result.ok else EXIT_FAILED


def _cmd_rollback(args: argparse.Namespace) -> int:
    from .fleet.rollback import restore_set
    from .runbook.operations import rollback_host
    from .remote.target import connect

    apply_id, backup = restore_set(args.evidence, args.host, expected_key=_expected_key(args))
    target = connect(args.target or args.host, inventory=args.inventory, credential=args.credential)
    report = rollback_host(target, apply_id, backup, apply=args.apply)
    print(report.render_text())
    return EXIT_OK if report.dry_run or report.completed else EXIT_FAILED


def _cmd_notebook(args: argparse.Namespace) -> int:
    from .runbook.headless import notebook_source, run_headless

    values = {"target": args.target, "inventory": str(args.inventory or ""), "profile": args.profile,
              "apply": args.apply, "reboot": args.reboot, "endpoints": ",".join(args.endpoint or DEFAULT_ENDPOINTS),
              "evidence_dir": str(args.evidence_dir or ""), "simulator_profile": args.simulator_profile,
              "record": str(args.record or "")}
    values.update({name: value for name, value in (("error_text", args.error_text),
                                                   ("session_fix_mode", args.session_fix_mode)) if value is not None})
    kernel_log = args.output.with_suffix(".kernel.log")
    result = run_headless(notebook_source(args.notebook), args.output, values, args.cell_timeout, kernel_log)
    print(f"wrote {result.output}" + (f" and {result.html}" if result.html else "") +
          (f" (kernel messages in {kernel_log})" if kernel_log.is_file() and kernel_log.stat().st_size else ""))
    if result.error_name is None:
        return EXIT_OK
    print(f"tls-runbook: error: {result.message}", file=sys.stderr)
    return EXIT_BAD_INPUT if result.error_name in _BAD_INPUT_ERRORS else EXIT_FAILED


def _cmd_recordings_make(args: argparse.Namespace) -> int:
    from .fidelity import make_simulator_recordings
    from .simulator.profile import builtin_profile_names

    names = args.profile or builtin_profile_names()
    operations = tuple(op.strip() for op in args.operations.split(","))
    for folder in make_simulator_recordings(args.folder, names, operations):
        print(f"SIMULATED: recorded {', '.join(operations)} in {folder}")
    return EXIT_OK


def _cmd_recordings_replay(args: argparse.Namespace) -> int:
    from .fidelity import compare_with_simulator
    from .remote.recording import host_folders, replay_host

    differing = False
    for folder in host_folders(args.folder):
        replayed = replay_host(folder, args.assess_profile)
        simulated = any(item.data.get("simulated") is True for item in replayed)
        print(f"{folder.name}: {len(replayed)} operation(s) replayed" + (" (recorded from a SIMULATED host)"
                                                                          if simulated else ""))
        for item in replayed:
            if item.verdict is not None:
                blockers = f" ({', '.join(item.verdict.blockers)})" if item.verdict.blockers else ""
                print(f"  {item.operation.operation}: verdict {item.verdict.outcome}{blockers}")
        if args.compare:
            found = compare_with_simulator(replayed, args.compare)
            differing = differing or bool(found)
            print(f"  simulator profile {args.compare}: " + ("same answers" if not found else
                                                             f"{len(found)} difference(s)"))
            for line in found:
                print(f"    {line}")
    return EXIT_FAILED if differing else EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args.hosts, output_folder(args.out, "--out"), args.parallel)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tls-runbook", description="Find, fix and prove the fix for AADSTS1002016 on Windows.")
    parser.add_argument("--version", action="version", version=f"tls-runbook {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = commands.add_parser("assess", help="assess a host-facts file and print the verdict")
    p.add_argument("facts", type=Path, help="host-facts v1 JSON file")
    p.add_argument("--profile", choices=PROFILES, default=DEFAULT_PROFILE)
    p.add_argument("--format", choices=("json", "table"), default="json")
    p.set_defaults(run=_cmd_assess)

    p = commands.add_parser("plan", help="write the fix and rollback .reg files for a host-facts file")
    p.add_argument("facts", type=Path)
    p.add_argument("--profile", choices=PROFILES, default=DEFAULT_PROFILE)
    p.add_argument("--reg-out", type=Path, required=True)
    p.add_argument("--rollback-out", type=Path, required=True)
    p.set_defaults(run=_cmd_plan)

    for name, run, text in (("inspect", _cmd_inspect, "collect host facts over WinRM (JSON)"),
                            ("probe", _cmd_probe, "TLS probes from the host to Entra's endpoints"),
                            ("check", _cmd_check, "read-only field check: does every operation a run uses work on "
                                                  "this host, and if not, why (exit 0: all work, whether or not the "
                                                  "host is affected; 1: one will not)")):
        p = commands.add_parser(name, help=text, description=text)
        p.add_argument("target", help="an inventory host name (with --inventory) or a WinRM URL such as "
                                      "http://127.0.0.5:5985/wsman")
        p.add_argument("--inventory", type=Path)
        p.add_argument("--auth", choices=AUTH_METHODS)
        p.add_argument("--credential", help="env:PREFIX, keyring:SERVICE[/USER] or prompt (default env:TLS_RUNBOOK)")
        p.add_argument("--ca-trust-path", help="CA bundle (PEM) for an HTTPS listener")
        p.add_argument("--endpoint", action="append", help="host:port to probe (repeatable)")
        if name == "inspect":
            p.add_argument("-o", "--output", type=Path, help="write the facts here instead of stdout")
        _add_record_option(p)
        p.set_defaults(run=run)

    p = commands.add_parser("simulate", help="run simulated Windows hosts (WinRM on loopback) in the foreground; they "
                                             "accept the account in TLS_RUNBOOK_SIM_USER / TLS_RUNBOOK_SIM_PASSWORD")
    p.add_argument("--profile", help="a built-in profile (see --list)")
    p.add_argument("--fleet", type=Path, metavar="DIR", help="run every profile (*.json) in DIR, one address each")
    p.add_argument("--list", action="store_true", help="name the built-in profiles")
    p.add_argument("--address", default="127.0.0.1", help="an address in 127.0.0.0/8 (default 127.0.0.1)")
    p.add_argument("--port", type=_bounded(int, 0, 65535), default=5985, help="0: any free port")
    p.add_argument("--auth", choices=("ntlm", "basic"), default="ntlm")
    p.add_argument("--https", action="store_true", help="HTTPS with a certificate generated at start")
    p.add_argument("--strict", action="store_true", help="refuse Basic and unencrypted HTTP, as Windows does")
    p.set_defaults(run=_cmd_simulate)

    p = commands.add_parser("run", help="run the runbook notebooks on every inventory host (papermill)")
    p.add_argument("--inventory", type=Path, help="tls-runbook YAML/CSV or an Ansible inventory")
    p.add_argument("--resume", type=Path, metavar="DIR", help="continue a partial run: the hosts that did not finish")
    p.add_argument("--signing-key", metavar="REF", help="sign the evidence with your Ed25519 key: file:PATH or env:NAME "
                                                        "(default: a key made for this run, printed at the end)")
    p.add_argument("--expect-key", metavar="FINGERPRINT", help="with --resume: the key the partial run was signed with")
    p.add_argument("--limit", help="Ansible-style host pattern")
    p.add_argument("--notebooks", default="01,02,03,04", help="comma-separated subset, in order")
    p.add_argument("--notebooks-dir", type=Path, help="where the runbook notebooks are (default: ./notebooks)")
    p.add_argument("--profile", choices=PROFILES, default=DEFAULT_PROFILE)
    p.add_argument("--apply", action="store_true", help="write the registry changes (default: dry run)")
    p.add_argument("--reboot", action="store_true", help="reboot hosts that need it, then verify")
    p.add_argument("--parallel", type=_bounded(int, 1, 64),
                   help="notebooks running at once (default: chosen from this machine, with the reason printed)")
    p.add_argument("--in-flight", type=_bounded(int, 1, 100_000), dest="in_flight",
                   help="hosts started and not finished at once, restarts included (default: no limit; a host "
                        "waiting for its restart holds no notebook)")
    p.add_argument("--timeout", type=_bounded(float, 1, _WEEK_S), default=1800.0,
                   help="per-host wall-clock limit in seconds")
    p.add_argument("--out", type=Path, default=Path("evidence"))
    p.add_argument("--executor", choices=("local", "dask"), default="local")
    p.add_argument("--scheduler", help="tcp://HOST:PORT of an existing Dask scheduler")
    p.add_argument("--canary", nargs="?", const=CANARY_PER_CAPTION, type=_canary, metavar="N",
                   help="run canary hosts first: one per OS caption (read first, read-only), or with N the first N "
                        "hosts; the rest start only if every canary ends where the run may end (dry run: compliant, "
                        "fixable, blocked, reboot_pending; --apply: compliant, fixed, fixed_after_reboot, blocked, "
                        "and reboot_pending unless --reboot). Anything else, failed above all, is unexpected: the "
                        "rest are not started, recorded as not_run, and the exit code is 1")
    _add_record_option(p)
    p.set_defaults(run=_cmd_run)

    p = commands.add_parser("evidence", help="check an evidence bundle")
    evidence_commands = p.add_subparsers(dest="evidence_command", required=True, parser_class=_Parser)
    v = evidence_commands.add_parser("verify", help="recompute every hash; look for credential values")
    v.add_argument("folder", type=Path, help="the run folder (holds manifest.json)")
    v.add_argument("--expect-key", metavar="KEY", help="the signer the change ticket names: a fingerprint "
                                                       "(SHA256:...), an ssh-ed25519 public key or a .pub file")
    v.set_defaults(run=_cmd_evidence_verify)

    p = commands.add_parser("rollback", help="restore a host from the backup in an evidence bundle")
    p.add_argument("--evidence", type=Path, required=True, help="the run folder (holds manifest.json)")
    p.add_argument("--host", required=True)
    p.add_argument("--inventory", type=Path)
    p.add_argument("--target", help="a WinRM URL, when the host is not looked up in an inventory")
    p.add_argument("--credential")
    p.add_argument("--expect-key", metavar="KEY", help="refuse a bundle not signed by this key (see evidence verify)")
    p.add_argument("--apply", action="store_true", help="restore (default: show what would be restored)")
    p.set_defaults(run=_cmd_rollback)

    p = commands.add_parser("notebook", help="run one runbook notebook headless (papermill), with an HTML copy")
    p.add_argument("notebook", help="00-04, a notebook name such as 02_os_check, or a path to an .ipynb")
    p.add_argument("--target", default="", help="WinRM URL or inventory host name (default: built-in simulated host)")
    p.add_argument("--inventory", type=Path)
    p.add_argument("--profile", choices=PROFILES, default=DEFAULT_PROFILE)
    p.add_argument("--apply", action="store_true", help="notebook 03 writes the registry (default: dry run)")
    p.add_argument("--reboot", action="store_true", help="notebook 03 restarts the host when the change needs it")
    p.add_argument("--endpoint", action="append", help="host:port to probe from the host (repeatable)")
    p.add_argument("--evidence-dir", type=Path, help="default: evidence/<host> in the current folder")
    p.add_argument("--simulator-profile", default="win7_wmf51", help="built-in simulated host when no --target")
    p.add_argument("--error-text", help="notebook 01: the sign-in error text")
    p.add_argument("--session-fix-mode", choices=("bor", "pin"), help="notebook 04: bor (default) or pin")
    p.add_argument("--cell-timeout", type=_bounded(int, 1, _WEEK_S), default=1800, metavar="SECONDS",
                   help="per cell (default 1800)")
    p.add_argument("-o", "--output", type=Path, required=True, help="executed .ipynb; the HTML goes next to it")
    p.add_argument("--record", type=Path, metavar="DIR", help="save every WinRM request and response (decrypted "
                                                              "SOAP, credentials removed) in DIR")
    p.set_defaults(run=_cmd_notebook)

    p = commands.add_parser("recordings", help="make, replay and compare recordings of WinRM exchanges")
    recording_commands = p.add_subparsers(dest="recordings_command", required=True, parser_class=_Parser)
    r = recording_commands.add_parser("make", help="record operations against built-in simulated hosts")
    r.add_argument("folder", type=Path, help="one subfolder per host is (re)written here")
    r.add_argument("--profile", action="append", help="a built-in simulator profile (repeatable; default: all)")
    r.add_argument("--operations", default="inspect,probe", help="inspect and/or probe (default: both)")
    r.set_defaults(run=_cmd_recordings_make)
    r = recording_commands.add_parser("replay", help="replay recordings through the reader and the engine")
    r.add_argument("folder", type=Path, help="a host's recordings, or a folder of host folders (run --record)")
    r.add_argument("--assess-profile", choices=PROFILES, default=DEFAULT_PROFILE, help="remediation profile")
    r.add_argument("--compare", metavar="SIMULATOR_PROFILE",
                   help="also run the operations against this simulated host and name every field that differs "
                        "(exit 1 when any does)")
    r.set_defaults(run=_cmd_recordings_replay)

    p = commands.add_parser("demo", help="run the whole runbook against a simulated fleet")
    p.add_argument("--hosts", type=_bounded(int, 1, 250), help="how many simulated hosts (default: one per built-in "
                                                                 "profile)")
    p.add_argument("--out", type=Path, default=Path("evidence"))
    p.add_argument("--parallel", type=_bounded(int, 1, 64),
                   help="notebooks running at once (default: chosen from this machine)")
    p.set_defaults(run=_cmd_demo)

    from .scope.command import add_parser as add_scope_parser

    add_scope_parser(commands)
    return parser


def _warn_in_one_line(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    """warnings.showwarning for the command line: ``tls-runbook: warning: ...``, no source location."""
    print(f"tls-runbook: warning: {one_line(str(message))}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    warnings.showwarning = _warn_in_one_line
    try:
        args = build_parser().parse_args(argv)
        run: Callable[[argparse.Namespace], int] = args.run
        return run(args)
    except InputError as exc:
        print(f"tls-runbook: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except RunbookError as exc:
        print(f"tls-runbook: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("tls-runbook: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
