"""The scoring service's settings, from the environment, validated once at start; errors name the variable.

The service is its own process (``make serve``), not a Dagster run, so it reads the same variables the code
location does (``MLFLOW_TRACKING_URI``, ``LAKEHOUSE_ROOT``, ``FEATURE_CONTRACT`` through ``load_settings``) plus
its own ``SERVING_*`` ones. API keys are held as ``ApiKeys`` and never printed.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass

from mlops_assets.ml.contract import FeatureSetContract
from mlops_assets.serving.guard import ApiKeys
from mlops_assets.serving.request_log import request_log_dir
from mlops_assets.settings import DEFAULT_CONTRACT, SettingsError, load_settings, number_setting


@dataclass(frozen=True)
class ServingSettings:
    host: str
    port: int
    model_name: str
    tracking_uri: str
    contract: FeatureSetContract
    request_log_dir: str
    api_keys: ApiKeys
    rate_limit_rps: float = 200.0
    rate_limit_burst: float = 50.0
    max_body_bytes: int = 1 << 20
    max_instances: int = 1000
    max_in_flight: int = 32
    timeout_ms: float = 1000.0
    alias_ttl_seconds: float = 5.0
    log_rotate_seconds: float = 10.0


def _bounded(environ: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    value = number_setting(environ, name, float, low, high)
    return default if value is None else value


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_serving_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> ServingSettings:
    environ = os.environ if environ is None else environ
    base = load_settings(environ)
    host = str(overrides.get("host") or environ.get("SERVING_HOST") or "127.0.0.1")
    port = int(overrides.get("port") or _bounded(environ, "SERVING_PORT", 8080, 1, 65535))
    api_keys = ApiKeys.parse(environ.get("SERVING_API_KEYS"))
    if not api_keys.enabled and not is_loopback(host):
        raise SettingsError(
            f"SERVING_API_KEYS is empty: the service may run without keys on a loopback address only, "
            f"not on {host!r}"
        )
    log_dir = environ.get("SERVING_REQUEST_LOG_DIR") or request_log_dir(base.lakehouse_root)
    contract = FeatureSetContract.from_yaml(base.feature_contract or DEFAULT_CONTRACT)
    return ServingSettings(
        host=host,
        port=port,
        model_name=environ.get("SERVING_MODEL_NAME") or "churn_model",
        tracking_uri=base.mlflow_tracking_uri,
        contract=contract,
        request_log_dir=log_dir,
        api_keys=api_keys,
        rate_limit_rps=_bounded(environ, "SERVING_RATE_LIMIT_RPS", 200, 0.1, 1e7),
        rate_limit_burst=_bounded(environ, "SERVING_RATE_LIMIT_BURST", 50, 1, 1e7),
        max_body_bytes=int(_bounded(environ, "SERVING_MAX_BODY_BYTES", 1 << 20, 1024, 1 << 30)),
        max_instances=int(_bounded(environ, "SERVING_MAX_INSTANCES", 1000, 1, 100_000)),
        max_in_flight=int(_bounded(environ, "SERVING_MAX_IN_FLIGHT", 32, 1, 10_000)),
        timeout_ms=_bounded(environ, "SERVING_TIMEOUT_MS", 1000, 1, 600_000),
        alias_ttl_seconds=_bounded(environ, "SERVING_ALIAS_TTL_S", 5, 0.1, 3600),
        log_rotate_seconds=_bounded(environ, "SERVING_LOG_ROTATE_S", 10, 0.1, 3600),
    )
