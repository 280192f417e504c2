"""``python -m bench``: the drift benchmark (``bench.drift_bench``), then the engine benchmark
(``bench.engine_bench``). ``python -m bench engines`` runs the engine benchmark alone."""

import sys

from bench import drift_bench, engine_bench

if sys.argv[1:] == ["engines"]:
    raise SystemExit(engine_bench.main())
raise SystemExit(drift_bench.main() or engine_bench.main())
