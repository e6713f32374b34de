"""Names of the message headers aiworker adds to Celery's (each once): every
stage of a pipeline carries its place, and every message when it was published."""

from __future__ import annotations

# A stage's place in its pipeline (orchestrator.pipelines.submission.build sets them; they are
# request attributes in the worker).
PIPELINE_ID = "pipeline_id"
PIPELINE = "pipeline"
STAGE_INDEX = "stage_index"
STAGE_COUNT = "stage_count"
REQUEST_ID = "request_id"
PRIORITY = "priority"  # the API's (0–9, 9 most urgent)
REDELIVERY = "redelivery"  # set on a lost stage that recovery sends again under its own id
PIPELINE_TRACE = "pipeline_traceparent"  # W3C traceparent of the submission: the trace every stage joins
PUBLISHED_AT = "published_at"  # epoch seconds of the message's (last) publish (orchestrator.app)
