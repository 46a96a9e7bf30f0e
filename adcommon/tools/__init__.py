"""Tools around the suite: benchmarks, the TIPC runner, test helpers."""
