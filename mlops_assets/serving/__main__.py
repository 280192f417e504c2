"""``python -m mlops_assets.serving [--host H] [--port P]`` (``make serve``): the scoring service, one uvicorn
worker (a second one beside a Spark JVM on 2 cores measured slower, see ../shared/notes/stack.md)."""

from __future__ import annotations

import argparse
import logging
import sys

from mlops_assets.serving.app import ScoringService, create_app
from mlops_assets.serving.config import load_serving_settings
from mlops_assets.serving.model_store import ModelStore, mlflow_registry
from mlops_assets.serving.request_log import RequestLogWriter
from mlops_assets.settings import SettingsError


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mlops_assets.serving", description=__doc__)
    parser.add_argument("--host", help="bind address (SERVING_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (SERVING_PORT, default 8080)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_serving_settings(host=args.host, port=args.port)
    except (SettingsError, ValueError) as error:
        sys.exit(f"cannot start the scoring service: {error}")
    read, load = mlflow_registry(settings.tracking_uri, settings.model_name)
    store = ModelStore(settings.model_name, read, load, settings.alias_ttl_seconds)
    service = ScoringService(
        settings, store, RequestLogWriter(settings.request_log_dir, settings.log_rotate_seconds)
    )
    logging.getLogger(__name__).info(
        "serving %s on http://%s:%d (auth: %s; request log: %s)",
        settings.model_name,
        settings.host,
        settings.port,
        f"{len(settings.api_keys.keys)} client key(s)"
        if settings.api_keys.enabled
        else "off (loopback only)",
        settings.request_log_dir,
    )
    import uvicorn

    uvicorn.run(
        create_app(service),
        host=settings.host,
        port=settings.port,
        workers=1,
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
