"""How many ``Session.run_ps`` calls per second one client gets from the simulated WinRM listener.

The listener runs in its own process, as it did when the reference rates were measured (a standard-library
WS-Management server answering pywinrm on loopback, on a 2-core CI-class machine), so the client and the server do
not share one interpreter lock and the ratio to the reference rates means something. Usage: ``python benchmarks/wsman_rate.py [seconds-per-mode]``.
"""

from __future__ import annotations

import multiprocessing
import sys
import time

import winrm

from runbook_lib.simulator.wsman import CommandResult, WSManServer, decode_encoded_command

USER = "bench"
PASSWORD = "bench-Passw0rd"
# run_ps per second measured with a standard-library server in its own process on a 2-core CI-class machine.
REFERENCE_RATES = {"basic": 147.0, "ntlm": 66.0}
MODE_LABELS = {"basic": "Basic over HTTP", "ntlm": "NTLM + encryption over HTTP"}


def echo_script(command_line: str, stdin: bytes) -> CommandResult:
    return CommandResult(stdout=(decode_encoded_command(command_line) or command_line) + "\n")


def serve(port_pipe, stop_event) -> None:
    with WSManServer(echo_script, auth="basic", credentials=[(USER, PASSWORD)]) as server:
        port_pipe.send(server.port)
        stop_event.wait()


def measure(port: int, transport: str, seconds: float) -> tuple[int, float]:
    session = winrm.Session(f"http://127.0.0.1:{port}/wsman", auth=(USER, PASSWORD), transport=transport)
    calls = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        result = session.run_ps("'x'")
        if result.std_out != b"'x'\r\n":
            raise SystemExit(f"{transport}: wrong output {result.std_out!r}")
        calls += 1
    return calls, time.perf_counter() - started


def main(seconds: float) -> None:
    context = multiprocessing.get_context("spawn")  # the only start method on Windows; same behaviour everywhere
    parent_end, child_end = context.Pipe()
    stop_event = context.Event()
    server_process = context.Process(target=serve, args=(child_end, stop_event), daemon=True)
    server_process.start()
    try:
        if not parent_end.poll(30):
            raise SystemExit("the listener process did not start")
        port = parent_end.recv()
        measure(port, "basic", 0.5)  # warm-up: imports, first connections
        print(f"{'mode':<30} {'calls':>6} {'run_ps/s':>9} {'reference':>10} {'ours/ref':>9}")
        for transport in ("basic", "ntlm"):
            calls, elapsed = measure(port, transport, seconds)
            rate = calls / elapsed
            reference = REFERENCE_RATES[transport]
            print(f"{MODE_LABELS[transport]:<30} {calls:>6} {rate:>9.1f} {reference:>10.1f} {rate / reference:>9.2f}")
    finally:
        stop_event.set()
        server_process.join(10)


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 5.0)
