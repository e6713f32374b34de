"""What the REST and gRPC APIs both do, in one place: submit a pipeline (files
into the blob store first), read status/history/metrics from tracking, cancel,
retry from the failed stage, watch until done. Raises svc_runtime's domain
errors; the REST handler and the gRPC interceptor map them to statuses."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, AsyncIterator

import kombu.exceptions
import pydantic
import redis
import sqlalchemy.exc
from celery import Celery

from gateway import uploads
from gateway.settings import GatewaySettings
from orchestrator.errors import InvalidInput
from orchestrator.pipelines import (
    DEFAULT_PRIORITY, PIPELINES, SubmittedPipeline, build, pipeline_of, remembered_submission, submit,
)
from orchestrator.tracking.queries import TrackingQueries
from orchestrator.tracking.states import RECORDED
from orchestrator.tracking.views import HistoryPage, Metrics, PipelineStatus, PipelineSummary
from svc_runtime.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from svc_runtime.logs import get_logger

log = get_logger(__name__)

TERMINAL_STATES = {"SUCCESS", "FAILURE", "REVOKED"}
# Which input field of a pipeline is a file, and how it is checked.
FILE_FIELDS = {"resume": "pdf", "interview_answer": "audio", "document": "document"}
SUBMIT_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Upload:
    data: bytes
    filename: str
    content_type: str


@dataclass
class Submission:
    pipeline_id: str
    pipeline: str
    task_ids: list[str]
    estimated_seconds: float
    status: str = "PENDING"


def _field_errors(exc: pydantic.ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}" for e in exc.errors())


class PipelineGateway:
    def __init__(self, settings: GatewaySettings, app: Celery, queries: TrackingQueries) -> None:
        self.settings = settings
        self.app = app
        self.queries = queries

    @property
    def blobs(self):
        return self.app.aiworker.blobs

    # -- submit ---------------------------------------------------------------
    async def submit(self, name: str, payload: dict[str, Any], files: dict[str, Upload] | None = None,
                     priority: int | None = None, request_id: str | None = None) -> Submission:
        if name not in PIPELINES:
            raise InvalidArgument(f"unknown pipeline {name!r}; known: {', '.join(sorted(PIPELINES))}")
        priority = DEFAULT_PRIORITY if priority is None else priority
        if not 0 <= priority <= 9:
            raise InvalidArgument(f"priority must be between 0 and 9, got {priority}")
        payload = dict(payload or {})
        files = files or {}
        expected = FILE_FIELDS.get(name)
        unexpected = sorted(set(files) - {expected})
        if unexpected:
            raise InvalidArgument(f"pipeline {name!r} takes no file field(s) {unexpected}")
        if expected:
            if expected not in files:
                raise InvalidArgument(f"pipeline {name!r} needs a file in field {expected!r}")
            payload.update(await asyncio.to_thread(self._store_upload, name, files[expected]))
        try:
            submitted: SubmittedPipeline = await asyncio.wait_for(
                asyncio.to_thread(submit, self.app, name, payload, priority=priority, request_id=request_id),
                SUBMIT_TIMEOUT_SECONDS)
        except pydantic.ValidationError as exc:
            raise InvalidArgument(f"invalid input for pipeline {name!r}: {_field_errors(exc)}") from None
        except (kombu.exceptions.OperationalError, redis.ConnectionError, OSError, asyncio.TimeoutError) as exc:
            raise Unavailable(f"the task broker is unavailable, nothing was submitted: {exc or 'timeout'}") from None
        log.info("pipeline_submitted", pipeline=name, pipeline_id=submitted.pipeline_id, priority=priority)
        return Submission(submitted.pipeline_id, name, submitted.task_ids, await self.estimate(name))

    def _store_upload(self, pipeline: str, upload: Upload) -> dict[str, str]:
        limit = self.settings.max_upload_bytes
        filename = uploads.safe_filename(upload.filename)
        if pipeline == "resume":
            uploads.check_pdf(upload.data, upload.content_type, limit)
            return {"pdf": self._put(upload.data), "filename": filename}
        if pipeline == "document":
            content_type = uploads.check_document(upload.data, upload.content_type, limit)
            return {"document": self._put(upload.data), "filename": filename, "content_type": content_type}
        uploads.check_audio(upload.data, upload.content_type, limit)
        return {"audio": self._put(upload.data)}

    def _put(self, data: bytes) -> str:
        try:
            return self.blobs.put(data)
        except InvalidInput as exc:
            raise InvalidArgument(str(exc)) from None

    async def estimate(self, name: str) -> float:
        """The sum of the stages' tracked mean durations; until every stage has
        history (or while tracking is unreachable), `default_estimate_seconds`
        when set, else the pipeline's own stated default."""
        default = self.settings.default_estimate_seconds or None
        try:
            return await asyncio.to_thread(self.queries.estimated_seconds, name, default)
        except sqlalchemy.exc.SQLAlchemyError:
            return float(default or pipeline_of(name).default_seconds)

    # -- read -------------------------------------------------------------------
    async def status(self, pipeline_id: str) -> PipelineStatus:
        status = await self._tracking(self.queries.pipeline_status, pipeline_id)
        if status is None:
            raise NotFound(f"pipeline {pipeline_id!r} not found")
        return status

    async def history(self, hours: float = 24, status: str | None = None, task_name: str | None = None,
                      pipeline: str | None = None, limit: int = 100, cursor: str | None = None) -> HistoryPage:
        if hours <= 0:
            raise InvalidArgument(f"hours must be positive, got {hours}")
        if status and status not in RECORDED:
            raise InvalidArgument(f"status {status!r} is not one of {', '.join(RECORDED)}")
        try:
            return await self._tracking(self.queries.history, hours, status, task_name, pipeline, limit, cursor)
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from None

    async def recent(self, limit: int = 20) -> list[PipelineSummary]:
        return await self._tracking(self.queries.recent_pipelines, limit)

    async def metrics(self, window_hours: float = 24) -> Metrics:
        if window_hours <= 0:
            raise InvalidArgument(f"window_hours must be positive, got {window_hours}")
        return await self._tracking(self.queries.metrics, window_hours)

    async def _tracking(self, fn: Any, *args: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args)
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, redis.ConnectionError) as exc:
            raise Unavailable(f"task tracking is unavailable: {str(exc).splitlines()[0]}") from None

    # -- control ------------------------------------------------------------------
    async def cancel(self, pipeline_id: str, terminate: bool = False) -> dict[str, Any]:
        """Revokes every stage that has not finished; with `terminate`, the
        running stage's process is stopped too (SIGTERM)."""
        status = await self.status(pipeline_id)
        pending = [t.task_id for t in status.tasks if t.status in ("PENDING", "RETRY")]
        running = [t.task_id for t in status.tasks if t.status in ("STARTED", "PROGRESS")]
        if status.overall_state in TERMINAL_STATES:
            raise FailedPrecondition(f"pipeline {pipeline_id} already ended ({status.overall_state})")

        def revoke() -> None:
            if pending:
                self.app.control.revoke(pending)
            if running:
                self.app.control.revoke(running, terminate=terminate, signal="SIGTERM")

        try:
            await asyncio.to_thread(revoke)
        except (kombu.exceptions.OperationalError, redis.ConnectionError, OSError) as exc:
            raise Unavailable(f"the task broker is unavailable, nothing was cancelled: {exc}") from None
        log.info("pipeline_cancelled", pipeline_id=pipeline_id, revoked=len(pending), running=len(running),
                 terminate=terminate)
        return {"pipeline_id": pipeline_id, "revoked": pending, "running": running, "terminated": terminate}

    async def retry(self, pipeline_id: str) -> Submission:
        """Re-runs a failed pipeline from its failed stage, with that stage's own
        input (kept in the result backend), reusing what the stages before it made."""
        status = await self.status(pipeline_id)
        if status.overall_state != "FAILURE":
            raise FailedPrecondition(f"pipeline {pipeline_id} is {status.overall_state}; only a failed one can be retried")
        failed = next(t for t in status.tasks if t.status == "FAILURE")
        spec = pipeline_of(status.pipeline)
        index = failed.stage_index if failed.stage_index is not None else failed.step - 1
        args = await asyncio.to_thread(lambda: self.app.AsyncResult(failed.task_id).args)
        if not args:
            raise FailedPrecondition(
                f"the input of stage {failed.task_name} is no longer stored (results expire after "
                f"{self.app.conf.result_expires}s); submit the pipeline again")
        payload = json.loads(json.dumps(args[0]))  # a plain copy

        def send() -> tuple[list[str], int]:
            chosen = self._submitted_priority(pipeline_id)
            workflow, task_ids = build(spec, payload, pipeline_id=pipeline_id, request_id=pipeline_id,
                                       priority=chosen, first_stage=index, app=self.app)
            workflow.apply_async()
            return task_ids, chosen

        try:
            task_ids, used = await asyncio.wait_for(asyncio.to_thread(send), SUBMIT_TIMEOUT_SECONDS)
        except (kombu.exceptions.OperationalError, redis.ConnectionError, OSError, asyncio.TimeoutError) as exc:
            raise Unavailable(f"the task broker is unavailable, nothing was retried: {exc or 'timeout'}") from None
        log.info("pipeline_retried", pipeline_id=pipeline_id, from_stage=failed.task_name, priority=used)
        await self._until_visible(pipeline_id, index, task_ids[0])
        return Submission(pipeline_id, spec.name, task_ids, await self.estimate(spec.name), status="PENDING")

    def _submitted_priority(self, pipeline_id: str) -> int:
        """The API priority the pipeline was submitted with (orchestrator.pipelines keeps it
        with the submission for as long as results are kept); the default once that expired."""
        remembered = remembered_submission(self.app, pipeline_id) or {}
        value = remembered.get("priority")
        return value if isinstance(value, int) and 0 <= value <= 9 else DEFAULT_PRIORITY

    async def _until_visible(self, pipeline_id: str, stage_index: int, task_id: str, timeout: float = 5.0) -> None:
        """Read-your-writes for a retry: returns once the status shows the new
        task at its stage (tracking records it within a drain interval)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            status = await self.status(pipeline_id)
            if any(t.task_id == task_id for t in status.tasks if t.stage_index == stage_index):
                return
            await asyncio.sleep(0.1)
        log.warning("retry_not_visible_yet", pipeline_id=pipeline_id, task_id=task_id)

    async def watch(self, pipeline_id: str) -> AsyncIterator[PipelineStatus]:
        """The status now, then each change, until the pipeline ends (or
        watch_max_seconds pass: a stream never outlives its use by much)."""
        last = None
        deadline = asyncio.get_running_loop().time() + self.settings.watch_max_seconds
        while asyncio.get_running_loop().time() < deadline:
            status = await self.status(pipeline_id)
            snapshot = status.model_dump_json(exclude={"source"})
            if snapshot != last:
                last = snapshot
                yield status
            if status.overall_state in TERMINAL_STATES and all(t.ready for t in status.tasks):
                return
            await asyncio.sleep(self.settings.watch_interval_seconds)
