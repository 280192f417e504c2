"""A run coordinator that SIGKILLs the process calling it, the dagster-daemon, at one stage of a sensor's launch.

Dagster's own sensor tests kill the daemon at named stages through debug crash flags, a private hook. The run
coordinator is the public, pluggable piece the daemon calls at exactly the stages the fault matrix names: after
the sensor's tick created the run and before the run is submitted, or right after it was submitted. Which
stage comes from ``MLOPS_TEST_DAEMON_CRASH_AT`` in the daemon's environment (unset: a plain queued
coordinator). Only tests bind it, through the ``dagster.yaml`` of their own instance.
"""

from __future__ import annotations

import os
import signal

import dagster as dg

CRASH_AT_VAR = "MLOPS_TEST_DAEMON_CRASH_AT"
BEFORE_SUBMIT = "before_submit"
AFTER_SUBMIT = "after_submit"


class CrashingRunCoordinator(dg.QueuedRunCoordinator):
    def submit_run(self, context: dg.SubmitRunContext) -> dg.DagsterRun:
        stage = os.environ.get(CRASH_AT_VAR)
        if stage == BEFORE_SUBMIT:
            os.kill(os.getpid(), signal.SIGKILL)
        run = super().submit_run(context)
        if stage == AFTER_SUBMIT:
            os.kill(os.getpid(), signal.SIGKILL)
        return run
