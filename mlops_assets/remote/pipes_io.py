"""How a remote step talks Pipes, by where it runs (``--pipes-io``):

- ``dbfs``: a Databricks classic cluster. dagster-databricks writes the context to DBFS and reads messages
  from DBFS (``/tmp/<random>``, through the REST API); the task reads and writes the same files through the
  cluster's FUSE mount. dagster-pipes' ``PipesDbfsContextLoader`` / ``PipesDbfsMessageWriter`` hard-code that
  mount as ``/dbfs``; the subclasses here take its root from ``MLOPS_FUSE_ROOT`` (unset on Databricks: ``/``,
  so ``/dbfs/...`` exactly as upstream). The tests' stand-in control plane runs tasks with ``MLOPS_FUSE_ROOT``
  pointing at the folder behind its DBFS API, which is what the FUSE mount is on a cluster.
- ``volumes``: serverless compute; context and messages in a Unity Catalog volume (``/Volumes/...``, also
  FUSE-mounted on the cluster, the same root applies).
- ``local``: a subprocess of the Dagster process (``dg.PipesSubprocessClient``): dagster-pipes' defaults.

Pipes' bootstrap parameters come as CLI arguments when the task has them (existing clusters, serverless),
else from the environment (a new cluster's ``spark_env_vars``, the local subprocess).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from dagster_pipes import (
    DAGSTER_PIPES_CONTEXT_CLI_ARGUMENT,
    PipesBufferedFilesystemMessageWriterChannel,
    PipesCliArgsParamsLoader,
    PipesContextData,
    PipesContextLoader,
    PipesDbfsContextLoader,
    PipesDbfsMessageWriter,
    PipesDefaultContextLoader,
    PipesDefaultMessageWriter,
    PipesEnvVarParamsLoader,
    PipesExtras,
    PipesMessageWriter,
    PipesParams,
    PipesParamsLoader,
    PipesUnityCatalogVolumesContextLoader,
    PipesUnityCatalogVolumesMessageWriter,
)

FUSE_ROOT_VAR = "MLOPS_FUSE_ROOT"
PIPES_IO = ("local", "dbfs", "volumes")
# Remote messages are flushed every few seconds while the step runs, and at once when it ends.
MESSAGE_INTERVAL_S = 5.0


def fuse_root() -> str:
    return os.environ.get(FUSE_ROOT_VAR) or "/"


def _path(params: PipesParams) -> str:
    path = params.get("path")
    if not isinstance(path, str):
        raise ValueError(f"Pipes params carry no 'path': {sorted(params)}")
    return path


def dbfs_local_path(dbfs_path: str, root: str | None = None) -> str:
    """Where a DBFS path (``/tmp/x``, ``dbfs:/tmp/x``) is on the cluster's filesystem: ``<root>/dbfs/tmp/x``."""
    return os.path.join(root or fuse_root(), "dbfs", dbfs_path.removeprefix("dbfs:").lstrip("/"))


def volume_local_path(volume_path: str, root: str | None = None) -> str:
    """Where a volume path (``/Volumes/c/s/v/x``) is on the cluster's filesystem."""
    return os.path.join(root or fuse_root(), volume_path.lstrip("/"))


class FuseDbfsContextLoader(PipesDbfsContextLoader):
    """``PipesDbfsContextLoader`` with the FUSE mount's root configurable (``/dbfs`` on Databricks)."""

    @contextmanager
    def load_context(self, params: PipesParams) -> Iterator[PipesContextData]:
        with open(dbfs_local_path(_path(params)), encoding="utf-8") as f:
            yield json.load(f)


class FuseDbfsMessageWriter(PipesDbfsMessageWriter):
    """``PipesDbfsMessageWriter`` with the FUSE mount's root configurable.

    Cluster log delivery is read from the session's ``clusterUsageTags`` like upstream, but an absent or
    ``"false"`` flag means no delivery (upstream treats any string as on, and a session without the tags
    as an error)."""

    def make_channel(self, params: PipesParams) -> PipesBufferedFilesystemMessageWriterChannel:
        return PipesBufferedFilesystemMessageWriterChannel(
            path=dbfs_local_path(_path(params)), interval=self.interval
        )

    def get_opened_extras(self) -> PipesExtras:
        from pyspark.sql import SparkSession

        spark = SparkSession.getActiveSession()
        if spark is None:
            raise RuntimeError("FuseDbfsMessageWriter needs the cluster's active SparkSession")
        tags = "spark.databricks.clusterUsageTags"
        if spark.conf.get(f"{tags}.clusterLogDeliveryEnabled", "false").lower() != "true":
            return {}
        destination = spark.conf.get(f"{tags}.clusterLogDestination")
        cluster_id = spark.conf.get(f"{tags}.clusterId")
        return {"cluster_driver_log_root": f"{destination}/{cluster_id}/driver"}


class FuseVolumesContextLoader(PipesUnityCatalogVolumesContextLoader):
    @contextmanager
    def load_context(self, params: PipesParams) -> Iterator[PipesContextData]:
        with open(volume_local_path(_path(params)), encoding="utf-8") as f:
            yield json.load(f)


class FuseVolumesMessageWriter(PipesUnityCatalogVolumesMessageWriter):
    def make_channel(self, params: PipesParams) -> PipesBufferedFilesystemMessageWriterChannel:
        return PipesBufferedFilesystemMessageWriterChannel(
            path=volume_local_path(_path(params)), interval=self.interval
        )


def pipes_io(kind: str) -> tuple[PipesParamsLoader, PipesContextLoader, PipesMessageWriter]:
    """The params loader, context loader and message writer for ``--pipes-io kind``."""
    params: PipesParamsLoader = (
        PipesCliArgsParamsLoader()
        if DAGSTER_PIPES_CONTEXT_CLI_ARGUMENT in sys.argv
        else PipesEnvVarParamsLoader()
    )
    if kind == "dbfs":
        return params, FuseDbfsContextLoader(), FuseDbfsMessageWriter(interval=MESSAGE_INTERVAL_S)
    if kind == "volumes":
        return params, FuseVolumesContextLoader(), FuseVolumesMessageWriter(interval=MESSAGE_INTERVAL_S)
    if kind == "local":
        return params, PipesDefaultContextLoader(), PipesDefaultMessageWriter()
    raise ValueError(f"--pipes-io {kind!r} is not one of {PIPES_IO}")
