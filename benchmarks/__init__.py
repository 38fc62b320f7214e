"""Benchmarks of the lakehouse against the original project's way and against the raw limit (issue 8).

`python -m benchmarks run` measures, on this machine and in one run, so ratios stay meaningful on a
shared, noisy machine:

- end to end: `vamosjuntos run` (Prefect's ephemeral API, and a running `prefect server start`) and our
  steps called directly vs the original prototype's way (`benchmarks.baseline`), same MongoDB server;
- extraction: `extract_pnadc` vs a bare drain of the same cursor (the raw limit);
- storage and scan cost: bytes per zone, bytes each question reads, Athena's price for it;
- scaling: ours and the original way from 100k to 2M documents, our stages one by one; `vamosjuntos run`
  at 2M too.

Every contestant runs in its own fresh subprocess (`benchmarks.worker`, or the `vamosjuntos` console
script via `benchmarks.cli`); the parent samples the PSS of that process tree (the Spark JVM included,
the MongoDB-protocol server reported apart) every ~0.3-0.5 s.
`benchmarks.analysis` turns the results into a dict of numbers and verdicts; `benchmarks/templates/
benchmarks.md.j2` renders it to `docs/benchmarks.md`, `benchmarks.plots` draws `docs/img/bench-*.png`.
"""
