"""``python -m bench``: the drift benchmark (``bench.drift_bench``), the drift backfill benchmark
(``bench.backfill_bench``), then the engine benchmark (``bench.engine_bench``). ``python -m bench engines`` or
``python -m bench backfill`` runs one alone."""

import sys

from bench import backfill_bench, drift_bench, engine_bench

ALONE = {"engines": engine_bench.main, "backfill": backfill_bench.main}

if sys.argv[1:2] and sys.argv[1] in ALONE:
    raise SystemExit(ALONE[sys.argv[1]](sys.argv[2:]))
raise SystemExit(drift_bench.main() or backfill_bench.main([]) or engine_bench.main())
