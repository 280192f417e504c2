"""``python -m bench``: every benchmark, one after the other on a quiet machine: drift (``bench.drift_bench``),
the drift backfill (``bench.backfill_bench``), drift noise at small n (``bench.noise_bench``), growth and scale of the lakehouse run (``bench.growth_bench``), then
the engines (``bench.engine_bench``), then online serving against ``mlflow models serve`` (``bench.serve_bench``). ``python -m bench drift|backfill|noise|growth|scale|engines|serve [options]`` runs one
alone (``python -m bench drift --sizes 1000000``)."""

import sys

from bench import backfill_bench, drift_bench, engine_bench, growth_bench, noise_bench, serve_bench

ALONE = {
    "drift": drift_bench.main,
    "engines": engine_bench.main,
    "backfill": backfill_bench.main,
    "noise": noise_bench.main,
    "serve": serve_bench.main,
    "growth": lambda argv: growth_bench.main(["growth", *argv]),
    "scale": lambda argv: growth_bench.main(["scale", *argv]),
}

if sys.argv[1:2] and sys.argv[1] in ALONE:
    raise SystemExit(ALONE[sys.argv[1]](sys.argv[2:]))
raise SystemExit(
    drift_bench.main([])
    or backfill_bench.main([])
    or noise_bench.main([])
    or growth_bench.main(["both"])
    or engine_bench.main()
    or serve_bench.main([])
)
