"""`aiworker-local`: the whole system on one machine (Redis, PostgreSQL, the four
model services, a worker per queue, beat, the gateway), for `make up` and `make demo`."""
