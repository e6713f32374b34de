"""Celery's plumbing below the app, on Redis as the broker: the queues and their
bindings (routing.py), message headers, publishing that outlasts a broker
restart, the result backends, lasting revokes, leases, the one beat, and what
waits in the queues (queue_state.py). Nothing here knows a pipeline."""
