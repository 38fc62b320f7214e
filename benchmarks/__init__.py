"""Benchmarks of the lakehouse against the original project's way and against the raw limit (issue 8).

`python -m benchmarks run` measures, on this machine and in one run, so ratios stay meaningful on a
shared, noisy machine:

- end to end: our pipeline vs the original prototype's way (`benchmarks.baseline`), same MongoDB server;
- extraction: `extract_pnadc` vs a bare drain of the same cursor (the raw limit);
- storage and scan cost: bytes per zone, bytes each question reads, Athena's price for it;
- scaling: the pipeline's stages from 100k to 2M documents.

Every contestant runs in its own fresh subprocess (`benchmarks.worker`); the parent samples the RSS of
that process tree (the Spark JVM included, the MongoDB-protocol server reported apart) every 50 ms.
The report goes to `docs/benchmarks.md` with its plots in `docs/img/bench-*.png`.
"""
