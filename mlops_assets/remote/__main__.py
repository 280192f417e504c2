"""``python -m mlops_assets.remote <step> --pipes-io local|dbfs|volumes`` (the local Pipes subprocess)."""

from mlops_assets.remote.entry import main

if __name__ == "__main__":
    main()
