"""Operator alerts: what a failed run or a failed check says, and how it reaches a webhook.

Pure and Dagster-free: the sensors in ``mlops_assets.defs.alerts`` collect the facts and call these. The
message is JSON with a ``text`` line as well (Slack- and Mattermost-style incoming webhooks show ``text``), a
link to the run in the UI and the runbook's next step. The webhook URL may carry a token, so it is never part
of a message, a log line or an error raised here.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field

# What to do about each kind of failure; the README's runbook says the same at more length.
RUNBOOK = {
    "promotion_gate": "the challenger was refused and @champion is unchanged; read the check's reasons. "
    "Nothing to undo; if the current champion is the problem: make rollback",
    "quarantine_rate": "too many rows quarantined: read quarantine/<table> (the rules broken), fix the source "
    "and re-run daily_lakehouse for the partition (idempotent)",
    "drift_severity": "critical drift: drift_retraining_sensor decides on a retrain (see its tick log); "
    "if a bad champion was promoted: make rollback",
    "freshness": "a partition is late: check that daily_lakehouse ran (schedule, daemon) and re-run it "
    "for the missing day",
    "dbt": "a gold model or dbt test failed: fix and re-run daily_lakehouse; a bad gold overwrite is undone "
    "with make restore TABLE=gold/<model> VERSION=<n>",
    "run": "re-run the failed run from the UI (Re-execute from failure); writes are idempotent",
}


class AlertDeliveryError(RuntimeError):
    """The webhook did not take the alert. The message never contains the URL (it may carry a token)."""


@dataclass(frozen=True)
class FailedCheck:
    asset: str
    check: str
    severity: str
    blocking: bool
    partition: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class Alert:
    kind: str  # "run_failure" or "check_failure"
    title: str
    job: str
    run_id: str
    run_url: str
    partition: str | None
    failed_steps: list[str] = field(default_factory=list)
    failed_checks: list[FailedCheck] = field(default_factory=list)
    error: str | None = None
    runbook: str = RUNBOOK["run"]

    def payload(self) -> dict:
        body = asdict(self)
        body["text"] = f"{self.title} — {self.run_url} — next: {self.runbook}"
        return body


def runbook_for(check_names: list[str], failed_steps: list[str]) -> str:
    """The most specific next step: a named check's, then dbt's, else a plain re-run."""
    for name in check_names:
        key = "freshness" if "fresh" in name else name
        if key in RUNBOOK:
            return RUNBOOK[key]
    if any("dbt" in step for step in failed_steps):
        return RUNBOOK["dbt"]
    return RUNBOOK["run"]


def run_url(ui_base_url: str, run_id: str) -> str:
    return f"{ui_base_url.rstrip('/')}/runs/{run_id}"


def first_line(message: str | None, limit: int = 300) -> str | None:
    if not message:
        return None
    line = message.strip().splitlines()[0] if message.strip() else ""
    return line[:limit]


def run_failure_alert(
    job: str,
    run_id: str,
    partition: str | None,
    failed_steps: list[str],
    failed_checks: list[FailedCheck],
    error: str | None,
    ui_base_url: str,
) -> Alert:
    checks = ", ".join(f"{c.asset}:{c.check}" for c in failed_checks)
    title = f"run failed: {job}" + (f" [{partition}]" if partition else "")
    title += f" — steps {', '.join(failed_steps)}" if failed_steps else ""
    title += f" — failed checks {checks}" if checks else ""
    return Alert(
        kind="run_failure",
        title=title,
        job=job,
        run_id=run_id,
        run_url=run_url(ui_base_url, run_id),
        partition=partition,
        failed_steps=failed_steps,
        failed_checks=failed_checks,
        error=first_line(error),
        runbook=runbook_for([c.check for c in failed_checks], failed_steps),
    )


def check_failure_alert(check: FailedCheck, job: str, run_id: str, ui_base_url: str) -> Alert:
    where = f" [{check.partition}]" if check.partition else ""
    return Alert(
        kind="check_failure",
        title=f"check failed ({check.severity}): {check.asset}:{check.check}{where}",
        job=job,
        run_id=run_id,
        run_url=run_url(ui_base_url, run_id),
        partition=check.partition,
        failed_checks=[check],
        runbook=runbook_for([check.check], []),
    )


def needs_own_alert(blocking: bool, severity: str) -> bool:
    """A blocking check failing at ERROR fails its step and so its run: the run-failure alert names it."""
    return not (blocking and severity == "ERROR")


def post_alert(url: str, alert: Alert, timeout_s: float = 10) -> int:
    """POST the alert as JSON; the HTTP status on success, AlertDeliveryError (without the URL) otherwise."""
    request = urllib.request.Request(
        url,
        data=json.dumps(alert.payload()).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "mlops-assets-alerts"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status
    except urllib.error.HTTPError as e:
        raise AlertDeliveryError(f"the alert webhook answered HTTP {e.code}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise AlertDeliveryError(
            f"the alert webhook could not be reached ({type(reason).__name__})"
        ) from None
