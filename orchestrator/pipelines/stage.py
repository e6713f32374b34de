"""The base class of every pipeline task: a thin stage that validates its input,
calls one service with the task's remaining time as the gRPC deadline, reports
progress, and retries only what retrying can fix."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any, TypeVar

import redis
import structlog
from celery import Task
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import OperationalError

from orchestrator.clients import CallContext, LlmClient
from orchestrator.errors import InvalidInput, RetryableServiceError
from orchestrator.pipelines.progress import write_pipeline_progress
from orchestrator.pipelines.resources import Resources
from svc_runtime import tracing

log = structlog.get_logger(__name__)
M = TypeVar("M", bound=BaseModel)

DEADLINE_MARGIN_SECONDS = 2.0  # the RPC gives up before Celery's soft limit fires
# Where a run's start time is kept: on the request (one Context per execution, on a
# thread-local stack), never on the task object, which every thread of a
# `--pool threads` worker shares.
STARTED_ATTR = "aiworker_started"


@dataclass(frozen=True)
class Generated:
    """An LLM reply gathered from its stream (the fields the stages read of GenerateResponse)."""

    text: str
    model: str
    completion_tokens: int


REPORT_EVERY_SECONDS = 0.25  # how often a streaming stage writes its progress


class ReportPace:
    """Whether a streaming stage's next progress write is due (at most every REPORT_EVERY_SECONDS)."""

    def __init__(self) -> None:
        self._last = time.monotonic()

    def due(self) -> bool:
        now = time.monotonic()
        if now - self._last < REPORT_EVERY_SECONDS:
            return False
        self._last = now
        return True


@dataclass(frozen=True)
class StageContext:
    pipeline_id: str
    pipeline: str
    stage_index: int
    stage_count: int
    request_id: str


def backoff_seconds(retries: int, base: float, cap: float) -> float:
    """Exponential backoff with "equal jitter": half of min(cap, base·2^n) plus a
    random part up to the other half, so retries spread out yet always wait."""
    step = min(cap, base * (2**retries))
    return step / 2 + random.uniform(0, step / 2)


class StageTask(Task):
    """Celery task base for pipeline stages (use with `bind=True`)."""

    abstract = True

    @property
    def resources(self) -> Resources:
        return self.app.aiworker  # set by orchestrator.app.create_app

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        setattr(self.request, STARTED_ATTR, time.monotonic())
        ctx = self.stage_context()
        structlog.contextvars.bind_contextvars(
            task_id=self.request.id, task_name=self.name, pipeline_id=ctx.pipeline_id, request_id=ctx.request_id
        )
        tracing.set_attributes(
            pipeline_id=ctx.pipeline_id or None,
            pipeline=ctx.pipeline or None,
            stage=self.name,
            stage_index=ctx.stage_index,
            queue=(self.request.delivery_info or {}).get("routing_key"),
            retries=self.request.retries or 0,
        )
        try:
            return self.run(*args, **kwargs)
        except RetryableServiceError as exc:
            self._retry_later(exc)
        except (OperationalError, redis.ConnectionError) as exc:  # PostgreSQL/Redis away: transient
            self._retry_later(RetryableServiceError(f"{type(exc).__name__}: {str(exc).splitlines()[0]}"))
        finally:
            structlog.contextvars.unbind_contextvars("task_id", "task_name", "pipeline_id", "request_id")

    def _retry_later(self, exc: RetryableServiceError) -> None:
        settings = self.resources.settings
        retries = self.request.retries
        if retries >= settings.max_retries:
            log.warning("stage_retries_exhausted", retries=retries, error=str(exc))
            raise exc
        countdown = backoff_seconds(retries, settings.retry_backoff_seconds, settings.retry_backoff_max_seconds)
        log.info("stage_retry_scheduled", retry=retries + 1, countdown=round(countdown, 2), error=str(exc))
        self.report("RETRY", 0, f"retry {retries + 1}/{settings.max_retries} in {countdown:.1f}s: {exc}")
        raise self.retry(exc=exc, countdown=countdown, max_retries=settings.max_retries)

    # -- context -------------------------------------------------------------
    def stage_context(self) -> StageContext:
        r = self.request
        return StageContext(
            pipeline_id=str(getattr(r, "pipeline_id", None) or ""),
            pipeline=str(getattr(r, "pipeline", None) or ""),
            stage_index=int(getattr(r, "stage_index", None) or 0),
            stage_count=int(getattr(r, "stage_count", None) or 1),
            request_id=str(getattr(r, "request_id", None) or r.root_id or r.id or ""),
        )

    def remaining_seconds(self) -> float:
        """Time left before the soft time limit of this run, minus a margin."""
        request = self.request
        hard, soft = request.timelimit or (None, None)
        conf = self.app.conf
        limit = soft or conf.task_soft_time_limit or hard or conf.task_time_limit or 600
        started = getattr(request, STARTED_ATTR, None)  # None: called outside __call__, the run starts now
        elapsed = time.monotonic() - started if started is not None else 0.0
        return max(0.5, limit - elapsed - DEADLINE_MARGIN_SECONDS)

    def rpc(self) -> CallContext:
        ctx = self.stage_context()
        return CallContext(
            timeout=self.remaining_seconds(),
            metadata=(
                ("x-request-id", ctx.request_id),
                ("x-pipeline-id", ctx.pipeline_id),
                ("x-task-id", str(self.request.id)),
            ),
        )

    # -- input ---------------------------------------------------------------
    @staticmethod
    def validate(model: type[M], data: Any) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'input'}: {err['msg']}" for err in exc.errors()
            )
            raise InvalidInput(f"invalid input for {model.__name__}: {problems}") from None

    # -- progress ------------------------------------------------------------
    def report(
        self, status: str, progress: int, message: str, task_state: bool = True, partial: str | None = None
    ) -> None:
        """Celery PROGRESS state of this task (unless `task_state` is False) + the
        pipeline's live Redis hash (status is the pipeline's: PROGRESS, RETRY,
        SUCCESS or FAILURE; `partial`: the output so far of a stage that writes as
        it goes, such as an LLM's answer)."""
        ctx = self.stage_context()
        stage = self.name.rsplit(".", 1)[-1]
        if not ctx.pipeline_id:  # a task sent on its own, outside any pipeline
            return
        overall = 100 * (ctx.stage_index + progress / 100) / max(ctx.stage_count, 1)
        try:  # progress is best effort: Redis away for a moment must not fail the work
            if task_state and status == "PROGRESS" and self.request.id and not self.request.is_eager:
                self.update_state(
                    state="PROGRESS",
                    meta={"stage": stage, "stage_index": ctx.stage_index, "progress": progress, "message": message},
                )
            write_pipeline_progress(
                self.resources.redis,
                ctx.pipeline_id,
                self.resources.settings.pipeline_hash_ttl,
                pipeline=ctx.pipeline,
                stage=stage,
                stage_index=ctx.stage_index,
                stage_count=ctx.stage_count,
                status=status,
                progress=progress,
                overall_progress=round(overall, 1),
                message=message,
                task_id=self.request.id,
                partial=partial,
            )
        except Exception as exc:  # noqa: BLE001 - the task goes on
            log.warning("progress_write_failed", error=f"{type(exc).__name__}: {exc}")

    def generate_reporting(
        self,
        messages: list[dict[str, str]],
        max_new_tokens: int,
        start: int,
        end: int,
        what: str,
        show_partial: bool = False,
    ) -> Generated:
        """The LLM's reply, streamed so that the stage's progress follows the tokens written
        (from `start` to `end` percent over `max_new_tokens`) rather than jumping when it ends;
        with `show_partial`, the text so far goes to the live hash too (a client watching sees it)."""
        parts: list[str] = []
        done, pace = None, ReportPace()
        for event in self.resources.client(LlmClient).generate_stream(
            messages, self.rpc(), max_new_tokens=max_new_tokens
        ):
            if not isinstance(event, str):
                done = event
                continue
            parts.append(event)
            if pace.due():
                share = min(len(parts), max_new_tokens) / max(max_new_tokens, 1)
                self.report(
                    "PROGRESS",
                    int(start + (end - start) * share),
                    f"{what}: {len(parts)} tokens",
                    partial="".join(parts) if show_partial else None,
                )
        return Generated(
            text="".join(parts),
            model=done.model if done else "",
            completion_tokens=done.usage.completion_tokens if done else len(parts),
        )

    def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
        ctx = self.stage_context()
        last = ctx.stage_index + 1 >= ctx.stage_count
        # The task's SUCCESS is stored already (and the backend never overwrites it):
        # only the pipeline's hash moves on.
        self.report(
            "SUCCESS" if last else "PROGRESS",
            100,
            "pipeline completed" if last else f"{self.name.rsplit('.', 1)[-1]} done",
            task_state=False,
        )

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        self.report("FAILURE", 0, f"{type(exc).__name__}: {exc}")
