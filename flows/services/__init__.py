"""The pipeline's steps as plain functions: settings (or the lake built from them) in, a typed result out.

`flows/pipeline.py` wraps each in a Prefect task or flow that adds logging, artifacts and retries only;
the benchmarks, the CLI and the tests call the same functions. The Spark steps (`flows.spark.runner.run_step`)
and the MongoDB extraction (`flows.sources.mongo.extract_pnadc`) already are such functions.
"""
