"""The fleet summary a change board reads: summary.csv, summary.json and a self-contained summary.html.

The HTML opens offline and needs no JavaScript: styles are inline and the chart is a PNG embedded as a data URI.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .verdict import SIMULATED_BANNER_HTML

OUTCOMES = ("fixed", "fixed_after_reboot", "compliant", "reboot_pending", "blocked", "failed")
SUCCESS_OUTCOMES = ("fixed", "fixed_after_reboot", "compliant")
_COLOURS = {"fixed": "#2e7d32", "fixed_after_reboot": "#558b2f", "compliant": "#1565c0",
            "reboot_pending": "#b26a00", "blocked": "#8b0000", "failed": "#c62828"}


@dataclass
class HostSummary:
    """One row of the summary; every field comes from the host's evidence files or the runner."""

    host: str
    outcome: str
    simulated: bool = False
    os: str = ""
    verdict_before: str = ""
    affected_before: bool | None = None
    changes_applied: int = 0
    restart: str = ""
    verdict_after: str = ""
    blockers: list[str] = field(default_factory=list)
    failed_notebook: str = ""
    error: str = ""
    notebooks: list[str] = field(default_factory=list)  # bundle-relative paths of the HTML renderings
    seconds: float = 0.0


def counts(rows: list[HostSummary]) -> dict[str, int]:
    found = Counter(row.outcome for row in rows)
    return {outcome: found.get(outcome, 0) for outcome in OUTCOMES}


def write_summary(root: Path, run_id: str, rows: list[HostSummary]) -> list[Path]:
    """Write the three summary files into the bundle root; returns their paths."""
    written = [root / "summary.csv", root / "summary.json", root / "summary.html"]
    with written[0].open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        columns = [f for f in HostSummary.__dataclass_fields__]
        writer.writerow(columns)
        for row in rows:
            values = asdict(row)
            writer.writerow([";".join(v) if isinstance(v, list) else v for v in (values[c] for c in columns)])
    simulated = any(row.simulated for row in rows)
    written[1].write_text(json.dumps({"run_id": run_id, "simulated": simulated, "counts": counts(rows),
                                      "hosts": [asdict(row) for row in rows]}, indent=2) + "\n", encoding="utf-8")
    written[2].write_text(render_html(run_id, rows), encoding="utf-8")
    return written


def chart_png(rows: list[HostSummary]) -> bytes:
    """Hosts by outcome and by OS, as one static PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_outcome = {k: v for k, v in counts(rows).items() if v}
    by_os = Counter(row.os or "unknown" for row in rows)
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6), dpi=100)
    left.barh(list(by_outcome), list(by_outcome.values()), color=[_COLOURS[k] for k in by_outcome])
    left.set_title("Hosts by outcome")
    left.invert_yaxis()
    labels = [name.replace("Microsoft ", "") for name in by_os]
    right.barh(labels, list(by_os.values()), color="#546e7a")
    right.set_title("Hosts by OS")
    right.invert_yaxis()
    for axis in (left, right):
        axis.xaxis.get_major_locator().set_params(integer=True)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def render_html(run_id: str, rows: list[HostSummary]) -> str:
    e = html.escape
    simulated = any(row.simulated for row in rows)
    tally = counts(rows)
    chart = base64.b64encode(chart_png(rows)).decode() if rows else ""
    head = ("<tr>" + "".join(f"<th>{h}</th>" for h in (
        "Host", "OS", "Verdict before", "Changes applied", "Restart", "Verdict after", "Outcome", "Blockers",
        "Notebooks")) + "</tr>")
    body = []
    for row in rows:
        links = " ".join(f"<a href='{e(path)}'>{e(Path(path).stem)}</a>" for path in row.notebooks)
        detail = f"<br><small>{e(row.failed_notebook)}: {e(row.error)}</small>" if row.error else ""
        body.append(
            f"<tr><td>{e(row.host)}{' (SIMULATED)' if row.simulated else ''}</td><td>{e(row.os)}</td>"
            f"<td>{e(row.verdict_before)}</td><td>{row.changes_applied}</td><td>{e(row.restart)}</td>"
            f"<td>{e(row.verdict_after)}</td>"
            f"<td style='color:{_COLOURS.get(row.outcome, '#000')};font-weight:bold'>{e(row.outcome)}{detail}</td>"
            f"<td>{e(', '.join(row.blockers))}</td><td>{links}</td></tr>")
    count_items = "".join(f"<li>{e(k)}: {v}</li>" for k, v in tally.items() if v)
    image = f"<img alt='Hosts by outcome and by OS' src='data:image/png;base64,{chart}'>" if chart else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>tls-runbook run {e(run_id)}</title>
<style>body{{font-family:Segoe UI,Arial,sans-serif;margin:24px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}}th{{background:#eee}}</style>
</head><body>
{SIMULATED_BANNER_HTML if simulated else ''}
<h1>tls-runbook fleet run {e(run_id)}</h1>
<p>AADSTS1002016 remediation: {len(rows)} host(s).</p>
<ul>{count_items}</ul>
{image}
<table><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>
</body></html>
"""


def render_text(rows: list[HostSummary]) -> str:
    """The summary table for a terminal."""
    header = f"{'host':30} {'os':38} {'before':10} {'changes':7} {'restart':11} {'outcome':18} blockers"
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(f"{row.host[:30]:30} {row.os.replace('Microsoft ', '')[:38]:38} {row.verdict_before[:10]:10} "
                     f"{row.changes_applied:7} {row.restart[:11]:11} {row.outcome:18} {', '.join(row.blockers)}")
    tally = ", ".join(f"{k} {v}" for k, v in counts(rows).items() if v)
    lines.append(f"{len(rows)} host(s): {tally}")
    return "\n".join(lines)
