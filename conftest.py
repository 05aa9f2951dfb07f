"""Root pytest configuration: keep files that must not be imported out of doctest collection."""

collect_ignore_glob = ["src/driftline/store/migrations/*", "benchmarks/*"]
