"""``python -m bench``: the drift benchmark (see ``bench.drift_bench``)."""

from bench.drift_bench import main

raise SystemExit(main())
