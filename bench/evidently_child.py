"""Child process of the drift benchmark: Evidently's DataDriftPreset on two Parquet files.

Protocol on stdout: ``READY`` once both files are loaded into pandas (the parent starts the time limit
then), then one JSON line ``{"seconds": ..., "drifted": [...]}``. Run in its own process so the parent
can kill it at the limit and a MemoryError stays here.

Usage: python -m bench.evidently_child REF.parquet CUR.parquet num1,num2,... cat1,cat2,...
"""

from __future__ import annotations

import json
import sys
import time


def main(argv: list[str]) -> int:
    reference_path, current_path, numerical, categorical = argv
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    reference = pd.read_parquet(reference_path)
    current = pd.read_parquet(current_path)
    definition = DataDefinition(
        numerical_columns=numerical.split(","), categorical_columns=categorical.split(",")
    )
    print("READY", flush=True)

    start = time.perf_counter()
    snapshot = Report([DataDriftPreset()], include_tests=True).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    seconds = time.perf_counter() - start

    # A column drifted when its ValueDrift test fails (Evidently applies each method's own direction:
    # distance >= threshold, or p-value < threshold).
    drifted = sorted(
        test["metric_config"]["params"]["column"]
        for test in snapshot.dict()["tests"]
        if test["metric_config"]["params"].get("type") == "evidently:metric_v2:ValueDrift"
        and test["status"] == "FAIL"
    )
    print(json.dumps({"seconds": seconds, "drifted": drifted}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
