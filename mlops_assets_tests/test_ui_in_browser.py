"""The Dagster UI as a user sees it, in a real browser: Debian's Chromium (headless, installed by `make
browser`, which `make test` runs), driven by Playwright, against the real webserver on a small lakehouse
materialized on the persistent instance. Assertions are on the rendered page's content, not on pixels;
screenshots are saved under var/test-artifacts/ui/.

The webserver runs without the daemon: `dagster dev`'s daemon would start this project's RUNNING sensors on
the suite's instance and launch retrains into the suite (dagster dev itself is started in test_listeners).
"""

from __future__ import annotations

import dagster as dg
import pytest

from mlops_assets_tests.browser import chromium_page, open_page, screenshot, webserver
from mlops_assets_tests.conftest import TEST_END

pytestmark = pytest.mark.ui

FAST_TRAINING = {"ops": {"ml__churn_model": {"config": {"n_trials": 4, "timeout_s": 120}}}}
EVALUATION_SECTIONS = ["Metrics", "Comparison", "Calibration", "Slices", "Fairness"]


@pytest.fixture(scope="module")
def materialized(foundation_run, test_defs, test_resources):
    """Training, evaluation and one day's scoring and drift on the persistent instance the webserver reads."""
    assert foundation_run.success
    instance = dg.DagsterInstance.get()
    test_resources["mlflow_tracking"].configure()
    if instance.get_latest_materialization_event(dg.AssetKey(["gold", "fct_usage_daily"])) is None:
        lakehouse_day = test_defs.resolve_job_def("daily_lakehouse").execute_in_process(
            partition_key=TEST_END.isoformat(), instance=instance, raise_on_error=False
        )
        assert lakehouse_day.success
    training = test_defs.resolve_job_def("train_evaluate_promote").execute_in_process(
        run_config=FAST_TRAINING, instance=instance, raise_on_error=False
    )
    # The gate may refuse this quick model (in the suite a better champion exists): the report is what is shown.
    report = instance.get_latest_materialization_event(dg.AssetKey(["ml", "evaluation_report"]))
    assert report is not None and report.run_id == training.run_id
    scoring = test_defs.resolve_job_def("daily_scoring").execute_in_process(
        partition_key=TEST_END.isoformat(), instance=instance, raise_on_error=False
    )
    assert scoring.success
    return instance


@pytest.fixture(scope="module")
def ui_url(materialized):
    with webserver() as url:
        yield url


@pytest.fixture(scope="module")
def page(ui_url):
    with chromium_page() as page:
        yield page


def test_the_lineage_shows_every_lifecycle_group_in_order(page, ui_url):
    open_page(page, f"{ui_url}/asset-groups")
    groups = [
        f"{i:02d}_{name}"
        for i, name in enumerate(
            [
                "landing",
                "bronze",
                "silver",
                "quarantine",
                "gold",
                "features",
                "training",
                "evaluation",
                "registry",
                "scoring",
                "monitoring",
            ],
            start=1,
        )
    ]
    page.get_by_text(groups[-1]).first.wait_for()
    text = page.inner_text("body")
    positions = [text.find(g) for g in groups]
    assert -1 not in positions, [g for g, p in zip(groups, positions, strict=True) if p < 0]
    assert positions == sorted(positions)  # the sidebar lists them in lifecycle order
    screenshot(page, "lineage")


def _open_report(page, url: str, wait_for_text: str | None = None):
    """Open an asset's latest Markdown report as a user does: its page, then "[Show Markdown]"."""
    open_page(page, url)
    if wait_for_text is not None:
        page.get_by_text(wait_for_text).first.wait_for()
    page.get_by_text("[Show Markdown]").first.click()
    return page.get_by_role("dialog").filter(has=page.locator("h1"))


def _save_report(page, dialog, name: str) -> None:
    """Screenshot the report from its title, then close it."""
    dialog.locator("h1").scroll_into_view_if_needed()
    screenshot(page, name)
    page.keyboard.press("Escape")


def test_the_drift_report_renders_its_table_and_histograms(page, ui_url):
    # max_psi: the numeric figures Dagster plots
    dialog = _open_report(page, f"{ui_url}/assets/monitoring/drift_report", wait_for_text="max_psi")
    dialog.locator("table").first.wait_for()
    assert dialog.locator("h1").inner_text() == TEST_END.isoformat()
    header = dialog.locator("table").first.locator("th").all_inner_texts()
    # each statistic beside its noise floor at the day's n
    assert {"column", "severity", "n", "PSI (floor)", "JS (floor)"} <= {h.strip() for h in header}
    assert dialog.locator("table").first.locator("tbody tr").count() >= 10  # one row per feature
    assert dialog.locator("img[src^='data:image/png']").count() >= 1  # the drifted columns' histograms
    _save_report(page, dialog, "drift_report")


def test_the_evaluation_report_renders_its_sections(page, ui_url):
    dialog = _open_report(page, f"{ui_url}/assets/ml/evaluation_report")
    dialog.locator("h2").first.wait_for()
    sections = [h.strip() for h in dialog.locator("h2").all_inner_texts()]
    assert all(s in sections for s in EVALUATION_SECTIONS), sections
    assert dialog.locator("table").count() >= len(EVALUATION_SECTIONS)
    assert dialog.locator("img[src^='data:image/png']").count() >= 1  # ROC / calibration plots
    _save_report(page, dialog, "evaluation_report")


def test_a_failed_check_is_shown_as_failed(page, ui_url):
    open_page(page, f"{ui_url}/assets/monitoring/drift_report?view=checks")
    page.get_by_text("drift_severity").first.wait_for()
    page.get_by_text("Failed").first.wait_for()
    assert "critical_columns" in page.inner_text("body")
    screenshot(page, "failed_check")
