"""`aiworker-local`: the whole system on one machine (Redis, PostgreSQL, the four
model services, a worker per queue, beat, the gateway), for `make up` and `make demo`.

Its parts also start single components as real processes for the tests, the
benchmarks and the evaluations: procs.py (a supervised child process), infra.py
(Redis, S3, free ports), postgres.py (a PostgreSQL with pgvector from pgserver),
services.py (a model service, waited for until SERVING), workers.py (a Celery
worker), gateway_process.py (the gateway) and stack.py (all of them together)."""
