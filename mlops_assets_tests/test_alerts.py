"""The alert path: a failed run reaches a webhook as JSON, through the real sensor and a real HTTP server.

The receiver is an ``http.server`` on 127.0.0.1 (what an operator's Slack/Mattermost hook would be); the failed
run is a real Dagster run on an ephemeral instance, with a blocking check failing at ERROR like a refused
promotion gate.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import dagster as dg
import pytest

from mlops_assets.alerting import AlertDeliveryError, FailedCheck, check_failure_alert, post_alert
from mlops_assets.defs.alerts import ALERTS_OFF, run_failure_alert_sensor
from mlops_assets.resources import AlertWebhookResource

SECRET_PATH = "/hooks/T000-sentinel-token"


@pytest.fixture
def receiver():
    """A webhook on 127.0.0.1 that keeps every JSON body it is sent; answers 500 on /broken."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.path == "/broken":
                self.send_response(500)
            else:
                received.append({"path": self.path, "json": json.loads(body)})
                self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", received
    server.shutdown()
    server.server_close()


@dg.asset
def gated():
    return 1


@dg.asset_check(asset=gated, blocking=True, name="promotion_gate")
def refuse() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.ERROR)


@dg.asset(deps=[gated])
def downstream():
    return 2


def _failed_run(instance: dg.DagsterInstance):
    job = dg.define_asset_job("gated_job", selection=[gated, downstream])
    defs = dg.Definitions(assets=[gated, downstream], asset_checks=[refuse], jobs=[job])
    result = defs.resolve_job_def("gated_job").execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success, "a blocking check failing at ERROR fails its run"
    return result


def test_a_failed_gate_reaches_the_webhook_with_job_step_check_and_link(receiver):
    url, received = receiver
    instance = dg.DagsterInstance.ephemeral()
    result = _failed_run(instance)
    run = instance.get_run_by_id(result.run_id)
    failure = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)[-1].dagster_event
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert", dagster_instance=instance, dagster_run=run, dagster_event=failure
    ).for_run_failure()
    alerts = AlertWebhookResource(url=url + SECRET_PATH, ui_base_url="http://127.0.0.1:3000")
    run_failure_alert_sensor(context, alerts=alerts)

    assert len(received) == 1
    alert = received[0]["json"]
    assert received[0]["path"] == SECRET_PATH
    assert alert["kind"] == "run_failure"
    assert alert["job"] == "gated_job"
    assert alert["run_id"] == result.run_id
    assert alert["run_url"] == f"http://127.0.0.1:3000/runs/{result.run_id}"
    assert [(c["asset"], c["check"], c["severity"]) for c in alert["failed_checks"]] == [
        ("gated", "promotion_gate", "ERROR")
    ]
    assert "make rollback" in alert["runbook"]  # the promotion gate's next step
    assert result.run_id in alert["text"]
    assert "sentinel-token" not in json.dumps(alert), "the webhook URL (it may carry a token) is never sent"


def test_no_webhook_means_no_alert_and_says_so(receiver):
    _, received = receiver
    instance = dg.DagsterInstance.ephemeral()
    result = _failed_run(instance)
    run = instance.get_run_by_id(result.run_id)
    failure = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)[-1].dagster_event
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert", dagster_instance=instance, dagster_run=run, dagster_event=failure
    ).for_run_failure()
    skipped = run_failure_alert_sensor(context, alerts=AlertWebhookResource())
    assert isinstance(skipped, dg.SkipReason) and skipped.skip_message == ALERTS_OFF
    assert received == []


def test_a_refusing_webhook_is_an_error_that_never_shows_the_url(receiver):
    url, _ = receiver
    check = FailedCheck("monitoring/drift_report", "drift_severity", "ERROR", blocking=False)
    alert = check_failure_alert(check, "daily_scoring", "abc123", "http://127.0.0.1:3000")
    assert alert.title == "check failed (ERROR): monitoring/drift_report:drift_severity"
    with pytest.raises(AlertDeliveryError, match="HTTP 500") as error:
        post_alert(url + "/broken", alert)
    assert "127.0.0.1" not in str(error.value)
    with pytest.raises(AlertDeliveryError, match="could not be reached") as error:
        post_alert("http://127.0.0.1:9/hooks/secret", alert, timeout_s=2)
    assert "secret" not in str(error.value)
