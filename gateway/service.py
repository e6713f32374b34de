"""What the REST and gRPC APIs both do, in one place: submit a pipeline (its
files checked and put into the blob store first, as its registry entry says),
read status/history/metrics from tracking, read a finished pipeline's result,
cancel, retry from the failed stage, watch until done. Raises svc_runtime's
domain errors; the REST handler and the gRPC interceptor map them to statuses."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import kombu.exceptions
import pydantic
import redis
import sqlalchemy.exc
from celery import Celery

from gateway.settings import GatewaySettings
from orchestrator.broker.revokes import revoke
from orchestrator.errors import InvalidInput, RetryableServiceError
from orchestrator.pipelines import uploads
from orchestrator.pipelines.registry import PipelineSpec, UploadSpec, pipeline_of
from orchestrator.pipelines.submission import SubmittedPipeline, resend_from, submit
from orchestrator.pipelines.uploads import IncomingFile
from orchestrator.tracking.reading.queries import TrackingQueries
from orchestrator.tracking.states import (
    FAILURE,
    PENDING,
    PIPELINE_TERMINAL,
    PROGRESS,
    RECORDED,
    RETRY,
    STARTED,
    SUCCESS,
)
from orchestrator.tracking.views import HistoryPage, Metrics, PipelineStatus, PipelineSummary, TaskRecord
from svc_runtime.errors import FailedPrecondition, Gone, InvalidArgument, MalformedRequest, NotFound, Unavailable
from svc_runtime.logs import get_logger

log = get_logger(__name__)

SUBMIT_TIMEOUT_SECONDS = 10.0
BROKER_ERRORS = (kombu.exceptions.OperationalError, redis.ConnectionError, OSError, asyncio.TimeoutError)


@dataclass
class Submission:
    pipeline_id: str
    pipeline: str
    task_ids: list[str]
    estimated_seconds: float
    status: str = PENDING


@dataclass
class PipelineResult:
    pipeline_id: str
    pipeline: str
    task_id: str  # the final stage's
    result: Any


def field_errors(exc: pydantic.ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}" for e in exc.errors())


class PipelineGateway:
    def __init__(self, settings: GatewaySettings, app: Celery, queries: TrackingQueries) -> None:
        self.settings = settings
        self.app = app
        self.queries = queries

    @property
    def blobs(self):
        return self.app.aiworker.blobs

    @staticmethod
    def spec(name: str) -> PipelineSpec:
        try:
            return pipeline_of(name)
        except KeyError as exc:
            raise InvalidArgument(str(exc.args[0])) from None

    # -- submit ---------------------------------------------------------------
    async def submit(
        self,
        name: str,
        payload: dict[str, Any],
        files: dict[str, IncomingFile] | None = None,
        priority: int | None = None,
        request_id: str | None = None,
    ) -> Submission:
        spec = self.spec(name)
        priority = spec.default_priority if priority is None else priority
        if not 0 <= priority <= 9:
            raise MalformedRequest(f"priority must be between 0 and 9, got {priority}")
        payload = dict(payload or {})
        files = files or {}
        unexpected = sorted(set(files) - {u.field for u in spec.uploads})
        if unexpected:
            takes = [u.field for u in spec.uploads] or "none"
            raise MalformedRequest(f"pipeline {spec.name!r} takes no file field(s) {unexpected}; it takes {takes}")
        for upload_spec in spec.uploads:
            if upload_spec.field not in files:
                raise MalformedRequest(f"pipeline {spec.name!r} needs a file in field {upload_spec.field!r}")
            payload.update(await asyncio.to_thread(self._store_upload, upload_spec, files[upload_spec.field]))
        try:
            submitted: SubmittedPipeline = await asyncio.wait_for(
                asyncio.to_thread(submit, self.app, spec.name, payload, priority=priority, request_id=request_id),
                SUBMIT_TIMEOUT_SECONDS,
            )
        except pydantic.ValidationError as exc:
            raise MalformedRequest(f"invalid input for pipeline {spec.name!r}: {field_errors(exc)}") from None
        except BROKER_ERRORS as exc:
            raise Unavailable(f"the task broker is unavailable, nothing was submitted: {exc or 'timeout'}") from None
        log.info("pipeline_submitted", pipeline=spec.name, pipeline_id=submitted.pipeline_id, priority=priority)
        return Submission(submitted.pipeline_id, spec.name, submitted.task_ids, await self.estimate(spec.name))

    def _store_upload(self, spec: UploadSpec, upload: IncomingFile) -> dict[str, str]:
        content_type = spec.check(upload, self.settings.max_upload_bytes)
        upload.file.seek(0)
        fields = {spec.field: self._put(upload)}
        if spec.with_filename:
            fields["filename"] = uploads.safe_filename(upload.filename)
        if spec.with_content_type:
            fields["content_type"] = content_type
        return fields

    def _put(self, upload: IncomingFile) -> str:
        """Streams the upload into the blob store (it was spooled to disk, not held in memory)."""
        try:
            return self.blobs.put_file(upload.file)
        except InvalidInput as exc:
            raise InvalidArgument(str(exc)) from None
        except RetryableServiceError as exc:
            raise Unavailable(f"the blob store is unavailable, nothing was submitted: {exc}") from None

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

    async def result(self, pipeline_id: str) -> PipelineResult:
        """The final stage's whole result, from Celery's result backend while it keeps
        it (tracking keeps only summaries)."""
        status = await self.status(pipeline_id)
        if status.overall_state != SUCCESS:
            raise FailedPrecondition(
                f"pipeline {pipeline_id} is {status.overall_state}: it has a result once it succeeds"
                + (" (see its status for the error)" if status.overall_state in PIPELINE_TERMINAL else "")
            )
        last = status.tasks[-1]
        outcome = self.app.AsyncResult(last.task_id)
        state, value = await self._backend(lambda: (outcome.state, outcome.result))
        if state != SUCCESS:  # the backend no longer has it (results expire): tracking's copy
            value = await self._tracking(self.queries.output, last.task_id)
        if state != SUCCESS and value is None:
            raise Gone(
                f"the result of pipeline {pipeline_id} is no longer stored (results are kept "
                f"{self.app.conf.result_expires} s, tracked outputs "
                f"{self.queries.settings.task_retention_days:g} days); its summary stays in the status"
            )
        return PipelineResult(pipeline_id, status.pipeline, last.task_id, value)

    async def tasks(self, pipeline_id: str) -> list[TaskRecord]:
        """The pipeline's tracked task rows: arguments, results and errors (summarised), tracebacks."""
        rows = await self._tracking(self.queries.pipeline_tasks, pipeline_id)
        if not rows:
            await self.status(pipeline_id)  # 404 for an unknown pipeline
        return rows

    async def history(
        self,
        hours: float = 24,
        status: str | None = None,
        task_name: str | None = None,
        pipeline: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> HistoryPage:
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

    async def _backend(self, fn: Any) -> Any:
        try:
            return await asyncio.to_thread(fn)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise Unavailable(f"the result backend is unavailable: {exc}") from None

    # -- control ------------------------------------------------------------------
    async def cancel(self, pipeline_id: str, terminate: bool = False) -> dict[str, Any]:
        """Revokes every stage that has not finished; with `terminate`, the
        running stage's process is stopped too (SIGTERM)."""
        status = await self.status(pipeline_id)
        pending = [t.task_id for t in status.tasks if t.status in (PENDING, RETRY)]
        running = [t.task_id for t in status.tasks if t.status in (STARTED, PROGRESS)]
        if status.overall_state in PIPELINE_TERMINAL:
            raise FailedPrecondition(f"pipeline {pipeline_id} already ended ({status.overall_state})")

        def cancel_all() -> None:
            revoke(self.app, pending)
            revoke(self.app, running, terminate=terminate)

        try:
            await asyncio.to_thread(cancel_all)
        except BROKER_ERRORS as exc:
            raise Unavailable(f"the task broker is unavailable, nothing was cancelled: {exc}") from None
        log.info(
            "pipeline_cancelled",
            pipeline_id=pipeline_id,
            revoked=len(pending),
            running=len(running),
            terminate=terminate,
        )
        return {"pipeline_id": pipeline_id, "revoked": pending, "running": running, "terminated": terminate}

    async def retry(self, pipeline_id: str) -> Submission:
        """Re-runs a failed pipeline from its failed stage, with that stage's own
        input (kept in the result backend), reusing what the stages before it made."""
        status = await self.status(pipeline_id)
        if status.overall_state != FAILURE:
            raise FailedPrecondition(
                f"pipeline {pipeline_id} is {status.overall_state}; only a failed one can be retried"
            )
        failed = next(t for t in status.tasks if t.status == FAILURE)
        spec = pipeline_of(status.pipeline)
        index = failed.stage_index if failed.stage_index is not None else failed.step - 1
        kept = await self._tracking(self.queries.stage_input, pipeline_id, index)
        payload = kept.payload if kept else None
        if payload is None:  # not tracked (too large): the result backend's copy while it lasts
            args = await self._backend(lambda: self.app.AsyncResult(failed.task_id).args)
            payload = json.loads(json.dumps(args[0])) if args else None
        if payload is None:
            raise FailedPrecondition(
                f"the input of stage {failed.task_name} is no longer stored; submit the pipeline again"
            )
        try:
            task_ids = await asyncio.wait_for(
                asyncio.to_thread(
                    resend_from,
                    self.app,
                    spec,
                    pipeline_id,
                    index,
                    payload,
                    traceparent=kept.traceparent if kept else None,
                ),
                SUBMIT_TIMEOUT_SECONDS,
            )
        except BROKER_ERRORS as exc:
            raise Unavailable(f"the task broker is unavailable, nothing was retried: {exc or 'timeout'}") from None
        log.info("pipeline_retried", pipeline_id=pipeline_id, from_stage=failed.task_name)
        await self._until_visible(pipeline_id, index, task_ids[0])
        return Submission(pipeline_id, spec.name, task_ids, await self.estimate(spec.name), status=PENDING)

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
            if status.overall_state in PIPELINE_TERMINAL and all(t.ready for t in status.tasks):
                return
            await asyncio.sleep(self.settings.watch_interval_seconds)
