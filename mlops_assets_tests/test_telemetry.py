"""Local-first: neither dbt nor MLflow sends usage statistics out, as the project runs them.

Both tools detect CI and pytest and switch telemetry off by themselves, so each probe runs in a child process
with a clean environment and reads the switch the project's own files set (the Makefile's exports,
dbt_project.yml), not the tools' CI guess. No probe ever runs with telemetry on: a failing probe must not
send anything either (``CI=true`` keeps MLflow's own guard up, and dbt's default is read from the project
file without running a command).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_assets.settings import DBT_PROJECT_DIR, PROJECT_ROOT

pytestmark = pytest.mark.security

VENV_BIN = Path(sys.executable).parent
MLFLOW_PROBE = (
    "import json, os; from mlflow.telemetry.utils import is_telemetry_disabled; "
    "from mlflow.environment_variables import MLFLOW_DISABLE_TELEMETRY; "
    "print(json.dumps({'disabled': is_telemetry_disabled(), 'switch': MLFLOW_DISABLE_TELEMETRY.get()}))"
)
DBT_PROBE = """
import json, sys
from dbt import tracking
from dbt.cli.main import dbtRunner
from dbt.flags import get_flags
project, out = sys.argv[1], sys.argv[2]
result = dbtRunner().invoke(["parse", "--quiet", "--project-dir", project, "--profiles-dir", project,
                             "--target-path", out + "/target", "--log-path", out + "/logs"])
print(json.dumps({"ok": result.success, "send": get_flags().SEND_ANONYMOUS_USAGE_STATS,
                  "do_not_track": tracking.active_user.do_not_track}))
"""


def _clean_env(**extra: str) -> dict[str, str]:
    """A user's shell without our telemetry switches. ``CI=true`` only keeps MLflow's CI guard on."""
    home = os.environ.get("HOME", "/root")
    return {"PATH": f"{VENV_BIN}:/usr/bin:/bin", "HOME": home, "CI": "true", **extra}


def _json_line(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def test_mlflow_telemetry_is_off_in_processes_make_starts():
    # `make --eval` adds a probe target that runs like `make dev` / `make demo` / `make mlflow` would.
    probe = f'telemetry-probe: ; @$(BIN)/python -c "{MLFLOW_PROBE}"'
    made = subprocess.run(
        ["make", "-s", "--no-print-directory", "-C", str(PROJECT_ROOT), "--eval", probe, "telemetry-probe"],
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert _json_line(made.stdout) == {"disabled": True, "switch": True}
    # Control: the same interpreter without the Makefile's exports has the switch off (CI's guard aside).
    bare = subprocess.run(
        [sys.executable, "-c", MLFLOW_PROBE], env=_clean_env(), capture_output=True, text=True, check=True
    )
    assert _json_line(bare.stdout)["switch"] is False


def test_mlflow_telemetry_is_off_in_the_test_suite():
    from mlflow.environment_variables import MLFLOW_DISABLE_TELEMETRY

    assert MLFLOW_DISABLE_TELEMETRY.get() is True


def test_dbt_usage_stats_are_off_by_the_project_file(tmp_path):
    env = _clean_env(LAKEHOUSE_ROOT=str(tmp_path / "lakehouse"))
    probe = [sys.executable, "-c", DBT_PROBE, str(DBT_PROJECT_DIR), str(tmp_path)]
    flags = _json_line(subprocess.run(probe, env=env, capture_output=True, text=True, check=True).stdout)
    assert flags == {"ok": True, "send": False, "do_not_track": True}
    # Control: without the `flags:` block, dbt's own default (read, not run) is on.
    from dbt.config.project import read_project_flags

    copy = tmp_path / "project"
    copy.mkdir()
    text = (DBT_PROJECT_DIR / "dbt_project.yml").read_text()
    (copy / "dbt_project.yml").write_text(text.replace("send_anonymous_usage_stats: false", ""))
    assert read_project_flags(str(copy), str(copy)).send_anonymous_usage_stats is True
    assert read_project_flags(str(DBT_PROJECT_DIR), str(DBT_PROJECT_DIR)).send_anonymous_usage_stats is False
