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
from typing import Iterable

from ..core.errors import InputError
from ..core.verdict import SIMULATED_BANNER_HTML

OUTCOMES = ("fixed", "fixed_after_reboot", "compliant", "fixable", "reboot_pending", "blocked", "failed",
            "interrupted", "not_run")  # not_run: a canary ended unexpectedly, so the host was never started
SUCCESS_OUTCOMES = ("fixed", "fixed_after_reboot", "compliant")
_COLOURS = {"fixed": "#2e7d32", "fixed_after_reboot": "#558b2f", "compliant": "#1565c0",
            "fixable": "#6d4c41", "reboot_pending": "#b26a00", "blocked": "#8b0000", "failed": "#c62828",
            "interrupted": "#616161", "not_run": "#9e9e9e"}


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


def write_summary(root: Path, run_id: str, rows: list[HostSummary], secrets: Iterable[str] = ()) -> list[Path]:
    """Write the three summary files into the bundle root (scrubbed, like everything in a bundle)."""
    from .evidence import Scrubber, write_scrubbed

    written = [root / "summary.csv", root / "summary.json", root / "summary.html"]
    table = io.StringIO(newline="")
    writer = csv.writer(table)
    columns = [f for f in HostSummary.__dataclass_fields__]
    writer.writerow(columns)
    for row in rows:
        values = asdict(row)
        writer.writerow([";".join(v) if isinstance(v, list) else v for v in (values[c] for c in columns)])
    simulated = any(row.simulated for row in rows)
    scrubber = Scrubber(secrets)
    write_scrubbed(written[0], table.getvalue(), scrubber)
    write_scrubbed(written[1], json.dumps({"run_id": run_id, "simulated": simulated, "counts": counts(rows),
                                           "hosts": [asdict(row) for row in rows]}, indent=2) + "\n", scrubber)
    write_scrubbed(written[2], render_html(run_id, rows), scrubber)
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


def body_html(run_id: str, rows: list[HostSummary], link_prefix: str = "") -> str:
    """The summary without the page around it: for summary.html and for the fleet-summary notebook."""
    e = html.escape
    simulated = any(row.simulated for row in rows)
    tally = counts(rows)
    chart = base64.b64encode(chart_png(rows)).decode() if rows else ""
    head = ("<tr>" + "".join(f"<th>{h}</th>" for h in (
        "Host", "OS", "Verdict before", "Changes applied", "Restart", "Verdict after", "Outcome", "Blockers",
        "Notebooks")) + "</tr>")
    body = []
    for row in rows:
        links = " ".join(f"<a href='{e(link_prefix + path)}'>{e(Path(path).stem)}</a>" for path in row.notebooks)
        detail = f"<br><small>{e(row.failed_notebook)}: {e(row.error)}</small>" if row.error else ""
        body.append(
            f"<tr><td>{e(row.host)}{' (SIMULATED)' if row.simulated else ''}</td><td>{e(row.os)}</td>"
            f"<td>{e(row.verdict_before)}</td><td>{row.changes_applied}</td><td>{e(row.restart)}</td>"
            f"<td>{e(row.verdict_after)}</td>"
            f"<td style='color:{_COLOURS.get(row.outcome, '#000')};font-weight:bold'>{e(row.outcome)}{detail}</td>"
            f"<td>{e(', '.join(row.blockers))}</td><td>{links}</td></tr>")
    count_items = "".join(f"<li>{e(k)}: {v}</li>" for k, v in tally.items() if v)
    image = f"<img alt='Hosts by outcome and by OS' src='data:image/png;base64,{chart}'>" if chart else ""
    return (f"{SIMULATED_BANNER_HTML if simulated else ''}<h1>tls-runbook fleet run {e(run_id)}</h1>"
            f"<p>AADSTS1002016 remediation: {len(rows)} host(s).</p><ul>{count_items}</ul>{image}"
            f"<table><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>")


def render_html(run_id: str, rows: list[HostSummary]) -> str:
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>tls-runbook run {html.escape(run_id)}</title>
<style>body{{font-family:Segoe UI,Arial,sans-serif;margin:24px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}}th{{background:#eee}}</style>
</head><body>
{body_html(run_id, rows)}
</body></html>
"""


@dataclass
class FleetSummary:
    """A run folder's summary, read back from summary.json; renders like summary.html inside a notebook."""

    root: Path
    run_id: str
    rows: list[HostSummary]

    @classmethod
    def load(cls, root: Path | str) -> "FleetSummary":
        root = Path(root)
        try:
            doc = json.loads((root / "summary.json").read_text(encoding="utf-8"))
            rows = [HostSummary(**row) for row in doc["hosts"]]
        except FileNotFoundError:
            raise InputError(f"{root} has no summary.json: not a tls-runbook run folder") from None
        except (ValueError, TypeError, KeyError):
            raise InputError(f"{root / 'summary.json'} is not a tls-runbook summary") from None
        return cls(root, str(doc.get("run_id", root.name)), rows)

    def _repr_html_(self) -> str:
        return body_html(self.run_id, self.rows, link_prefix=f"{self.root.as_posix()}/")

    def __str__(self) -> str:
        return render_text(self.rows)


def newest_run(*folders: Path | str) -> Path | None:
    """The most recent run folder (holding summary.json) under any of ``folders``."""
    runs = [p.parent for folder in folders for p in Path(folder).glob("*/summary.json")]
    return max(runs, key=lambda p: p.name) if runs else None


def render_text(rows: list[HostSummary]) -> str:
    """The summary table for a terminal."""
    header = f"{'host':30} {'os':38} {'before':10} {'changes':7} {'restart':11} {'outcome':18} blockers or error"
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(f"{row.host[:30]:30} {row.os.replace('Microsoft ', '')[:38]:38} {row.verdict_before[:10]:10} "
                     f"{row.changes_applied:7} {row.restart[:11]:11} {row.outcome:18} "
                     f"{', '.join(row.blockers) or (row.error if row.outcome in ('failed', 'not_run') else '')}")
    tally = ", ".join(f"{k} {v}" for k, v in counts(rows).items() if v)
    lines.append(f"{len(rows)} host(s): {tally}")
    return "\n".join(lines)
