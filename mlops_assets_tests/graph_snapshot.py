"""The code location's graph as stable, sorted JSON: what a refactor of the definitions must leave unchanged.

Assets (deps, group, kinds, owners, partitions, backfill policy, the resource keys they need), checks (and
whether they block), jobs (selection, partitions, tags), schedules, sensors and the resource keys bound.
Built from ``build_defs()`` alone: loading definitions starts no JVM.

Regenerate after an intended change with ``UPDATE_GRAPH_SNAPSHOT=1 pytest
mlops_assets_tests/test_graph_snapshot.py`` and review the diff.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg

SNAPSHOT = Path(__file__).parent / "snapshots" / "graph.json"


def _key(key: dg.AssetKey) -> str:
    return key.to_user_string()


def _check_key(key: dg.AssetCheckKey) -> str:
    return f"{_key(key.asset_key)}:{key.name}"


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _assets(defs: dg.Definitions) -> dict[str, Any]:
    graph = defs.resolve_asset_graph()
    assets: dict[str, Any] = {}
    for key in sorted(graph.get_all_asset_keys()):
        node = graph.get(key)
        resources = sorted(node.assets_def.required_resource_keys) if node.is_executable else []
        assets[_key(key)] = {
            "deps": sorted(_key(k) for k in node.parent_keys),
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            "owners": sorted(node.owners),
            "tags": dict(sorted(node.tags.items())),
            "pools": sorted(node.pools or []),
            "partition_mappings": {_key(k): str(m) for k, m in sorted(node.partition_mappings.items())},
            "partitions": _text(node.partitions_def),
            "backfill_policy": _text(node.backfill_policy),
            "automation_condition": _text(node.automation_condition),
            "code_version": node.code_version,
            "executable": node.is_executable,
            "description": node.description,
            "resources": resources,
        }
    return assets


def _checks(defs: dg.Definitions) -> dict[str, Any]:
    graph = defs.resolve_asset_graph()
    checks: dict[str, Any] = {}
    for key in sorted(graph.asset_check_keys):
        node = graph.get(key)
        checks[_check_key(key)] = {
            "blocking": node.blocking,
            "partitions": _text(node.partitions_def),
            "description": node.description,
            "resources": sorted(graph.assets_def_for_key(key).required_resource_keys),
        }
    return checks


def _jobs(defs: dg.Definitions) -> dict[str, Any]:
    jobs: dict[str, Any] = {}
    for job in sorted(defs.get_repository_def().get_all_jobs(), key=lambda j: j.name):
        if job.name.startswith("__"):
            continue  # Dagster's implicit asset job
        layer = job.asset_layer
        jobs[job.name] = {
            "assets": sorted(_key(k) for k in layer.selected_asset_keys),
            "checks": sorted(_check_key(k) for k in layer.asset_graph.asset_check_keys),
            "ops": sorted(n.name for n in job.nodes) if not layer.selected_asset_keys else None,
            "partitions": _text(job.partitions_def),
            "tags": dict(sorted(job.tags.items())),
            "executor": job.executor_def.name,
            "description": job.description,
        }
    return jobs


def _schedules(defs: dg.Definitions) -> dict[str, Any]:
    return {
        s.name: {
            "cron": s.cron_schedule,
            "timezone": s.execution_timezone,
            "job": s.job_name,
            "default_status": s.default_status.value,
            "description": s.description,
        }
        for s in sorted(defs.get_repository_def().schedule_defs, key=lambda s: s.name)
    }


def _sensors(defs: dg.Definitions) -> dict[str, Any]:
    sensors: dict[str, Any] = {}
    for s in sorted(defs.get_repository_def().sensor_defs, key=lambda s: s.name):
        entry: dict[str, Any] = {
            "type": s.sensor_type.value,
            "targets": sorted(t.job_name for t in s.targets if t.job_name),
            "minimum_interval_seconds": s.minimum_interval_seconds,
            "default_status": s.default_status.value,
            "resources": sorted(s.required_resource_keys),
            "description": s.description,
        }
        if isinstance(s, dg.RunStatusSensorDefinition):
            # Dagster has no public accessor for what a run-status sensor watches; its own attributes say it.
            entry["run_status"] = str(vars(s).get("_run_status"))
            entry["monitored_jobs"] = sorted(j.name for j in vars(s).get("_monitored_jobs") or [])
        sensors[s.name] = entry
    return sensors


def graph_snapshot(defs: dg.Definitions) -> dict[str, Any]:
    return {
        "assets": _assets(defs),
        "checks": _checks(defs),
        "jobs": _jobs(defs),
        "schedules": _schedules(defs),
        "sensors": _sensors(defs),
        "resources": sorted(defs.resources or {}),
    }


def render(snapshot: dict[str, Any]) -> str:
    return json.dumps(snapshot, indent=1, sort_keys=True, default=str) + "\n"
