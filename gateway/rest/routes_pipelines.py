"""Pipelines: submit any registered pipeline (JSON, or multipart with its
files), recent pipelines, status, the final result, cancel, retry from the
failed stage, and live events (SSE).

`POST /api/v1/pipelines/{name}` is derived from the registry
(orchestrator/pipelines/registry.py): the names it takes, the files each pipeline
accepts, the request body's documentation."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel
from sse_starlette.sse import EventSourceResponse
from starlette.datastructures import UploadFile

from gateway.rest.deps import pipelines, require_api_key
from gateway.rest.errors import error_responses
from gateway.rest.schemas import (
    Cancelled,
    Envelope,
    FileField,
    PipelineResultBody,
    PipelineType,
    StageType,
    Submitted,
)
from gateway.service import PipelineGateway, Submission
from orchestrator.pipelines.registry import PIPELINES, PipelineSpec, pipeline_of
from orchestrator.pipelines.uploads import IncomingFile
from orchestrator.tracking.views import PipelineStatus, PipelineSummary, TaskRecord
from svc_runtime.errors import MalformedRequest, NotFound, TooLarge

router = APIRouter(
    prefix="/api/v1/pipelines",
    tags=["pipelines"],
    dependencies=[Depends(require_api_key)],
    responses=error_responses(401),
)

FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
SINGLE_FILE_FIELD = "file"  # a pipeline taking one file also takes it under this name
MAX_FORM_FIELDS = 64


def submitted(submission: Submission, message: str) -> Envelope[Submitted]:
    return Envelope(
        data=Submitted(
            pipeline_id=submission.pipeline_id,
            pipeline=submission.pipeline,
            status=submission.status,
            message=message,
            estimated_duration=submission.estimated_seconds,
            task_ids=submission.task_ids,
        )
    )


def read_upload(file: UploadFile, limit: int) -> IncomingFile:
    """The upload as Starlette spooled it (to disk beyond 1 MiB): never read whole into
    memory; over the limit it is refused before anything reads it."""
    size = file.size if file.size is not None else file.file.seek(0, 2)
    if size > limit:
        raise TooLarge(f"{file.filename or 'upload'}: {size} bytes, over the {limit}-byte upload limit")
    return IncomingFile(file.file, size, file.filename or "", file.content_type or "")


def _parse_priority(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().lstrip("-").isdigit():
        raise MalformedRequest(f"priority must be an integer from 0 to 9, got {value!r}")
    return int(value)


def _form_value(model: type[BaseModel], key: str, raw: str) -> Any:
    """A form field as its input-model field wants it: strings stay strings, an empty
    string is "not given" for an optional field, anything else is read as JSON."""
    field = model.model_fields.get(key)
    if field is None or field.annotation in (str, "str"):
        return raw
    if raw == "" and not field.is_required():
        return field.get_default(call_default_factory=True)
    try:
        return json.loads(raw)
    except ValueError:
        return raw  # the model's validation says what is wrong with it


async def read_submission(
    request: Request, spec: PipelineSpec, limit: int
) -> tuple[dict, dict[str, IncomingFile], int | None]:
    """(input, files by field, priority) of a JSON or form body."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media in FORM_TYPES:
        try:
            form = await request.form(max_files=len(spec.uploads) + 1, max_fields=MAX_FORM_FIELDS)
        except Exception as exc:  # noqa: BLE001 - Starlette's multipart errors: the client's malformed body
            raise MalformedRequest(f"malformed form body: {exc}") from None
        payload: dict[str, Any] = {}
        files: dict[str, IncomingFile] = {}
        priority = None
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                field = spec.uploads[0].field if key == SINGLE_FILE_FIELD and len(spec.uploads) == 1 else key
                if field in files:
                    raise MalformedRequest(f"file field {key!r} given twice")
                files[field] = read_upload(value, limit)
            elif key == "priority":
                priority = _parse_priority(value)
            elif key == "input":
                try:
                    extra = json.loads(value)
                except ValueError as exc:
                    raise MalformedRequest(f"form field 'input' is not JSON: {exc}") from None
                if not isinstance(extra, dict):
                    raise MalformedRequest("form field 'input' must be a JSON object")
                payload.update(extra)
            else:
                payload[key] = _form_value(spec.input_model, key, value)
        return payload, files, priority
    if media not in ("application/json", ""):
        raise MalformedRequest(f"send application/json or multipart/form-data, not {media!r}")
    body = await request.body()
    try:
        data = json.loads(body) if body.strip() else {}
    except ValueError as exc:
        raise MalformedRequest(f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MalformedRequest("the JSON body must be an object: the pipeline's input fields and `priority`")
    priority = _parse_priority(data.pop("priority", None))
    return data, {}, priority


def _request_body_docs() -> dict[str, Any]:
    """The body of `POST /{name}` in OpenAPI, per pipeline of the registry."""
    json_variants, form_properties = [], {"priority": {"type": "integer", "minimum": 0, "maximum": 9}}
    for spec in PIPELINES.values():
        schema = spec.input_model.model_json_schema()
        file_fields = {u.field for u in spec.uploads}
        properties = {k: v for k, v in schema.get("properties", {}).items() if k not in file_fields}
        json_variants.append(
            {
                "title": spec.name,
                "type": "object",
                "description": f"{spec.name}: {spec.description}",
                "properties": {**properties, "priority": form_properties["priority"]},
            }
        )
        for upload in spec.uploads:
            form_properties[upload.field] = {
                "type": "string",
                "format": "binary",
                "description": f"{spec.name}: {upload.description} (also accepted as `file`)",
            }
        for key, value in properties.items():
            form_properties.setdefault(key, {"description": value.get("description") or f"{spec.name} input"})
    return {
        "required": False,
        "content": {
            "application/json": {"schema": {"oneOf": json_variants}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": form_properties,
                    "description": "the pipeline's files and input fields (or `input`: a JSON object), `priority`",
                }
            },
        },
    }


def submit_router() -> APIRouter:
    """The submission route of every pipeline registered now (the gateway builds it
    after loading AIWORKER_PIPELINE_MODULES, so theirs are documented too)."""
    target = APIRouter(
        prefix=router.prefix, tags=router.tags, dependencies=router.dependencies, responses=error_responses(401)
    )
    names = sorted({spec.name for spec in PIPELINES.values()} | {spec.slug for spec in PIPELINES.values()})

    @target.post(
        "/{name}",
        response_model=Envelope[Submitted],
        status_code=202,
        summary="Submit a pipeline",
        description="Starts the named pipeline (as named in the registry, `_` or `-`): a JSON body with its "
        "input fields, or a multipart form with its files. `priority` 0–9 (9 most urgent).",
        openapi_extra={"requestBody": _request_body_docs()},
        responses=error_responses(400, 404, 413, 422, 503),
    )
    async def submit_pipeline(
        request: Request,
        name: str = Path(description="pipeline name", json_schema_extra={"enum": names}),
        gateway: PipelineGateway = Depends(pipelines),
    ) -> Envelope[Submitted]:
        try:
            spec = pipeline_of(name)
        except KeyError as exc:
            raise NotFound(str(exc.args[0])) from None
        payload, files, priority = await read_submission(request, spec, gateway.settings.max_upload_bytes)
        submission = await gateway.submit(spec.name, payload, files, priority, request.state.request_id)
        return submitted(submission, f"{spec.slug} pipeline started")

    return target


def pipeline_type(spec: PipelineSpec) -> PipelineType:
    schema = spec.input_model.model_json_schema()
    files = {u.field for u in spec.uploads}
    schema["properties"] = {k: v for k, v in schema.get("properties", {}).items() if k not in files}
    schema["required"] = [k for k in schema.get("required", []) if k not in files]
    return PipelineType(
        name=spec.name,
        slug=spec.slug,
        description=spec.description,
        stages=[StageType(task_name=s.name, queue=s.queue) for s in spec.stages],
        files=[FileField(field=u.field, description=u.description) for u in spec.uploads],
        input_schema=schema,
        default_priority=spec.default_priority,
        default_seconds=spec.default_seconds,
    )


types_router = APIRouter(
    prefix="/api/v1/pipeline-types",
    tags=["pipelines"],
    dependencies=[Depends(require_api_key)],
    responses=error_responses(401),
)


@types_router.get("", response_model=Envelope[list[PipelineType]], summary="The registered pipelines")
async def pipeline_types():
    return Envelope(data=[pipeline_type(spec) for spec in PIPELINES.values()])


@router.get("", response_model=Envelope[list[PipelineSummary]], responses=error_responses(422, 503))
async def recent_pipelines(limit: int = Query(20, ge=1, le=200), gateway: PipelineGateway = Depends(pipelines)):
    return Envelope(data=await gateway.recent(limit))


@router.get("/{pipeline_id}", response_model=Envelope[PipelineStatus], responses=error_responses(404, 503))
async def pipeline_status(pipeline_id: str, gateway: PipelineGateway = Depends(pipelines)):
    return Envelope(data=await gateway.status(pipeline_id))


@router.get(
    "/{pipeline_id}/tasks",
    response_model=Envelope[list[TaskRecord]],
    responses=error_responses(404, 503),
    summary="A pipeline's tracked tasks",
)
async def pipeline_tasks(pipeline_id: str, gateway: PipelineGateway = Depends(pipelines)):
    """Every tracked task of the pipeline (a retried stage has several), in stage order: arguments,
    summarised results, errors with their tracebacks, worker, queue and times."""
    return Envelope(data=await gateway.tasks(pipeline_id))


@router.get(
    "/{pipeline_id}/result",
    response_model=Envelope[PipelineResultBody],
    responses=error_responses(404, 409, 410, 503),
    summary="A finished pipeline's whole result",
)
async def pipeline_result(pipeline_id: str, gateway: PipelineGateway = Depends(pipelines)):
    """The final stage's result in full (the status shows summaries): 409 while the
    pipeline has not succeeded, 410 once the result backend no longer keeps it."""
    outcome = await gateway.result(pipeline_id)
    return Envelope(data=PipelineResultBody(**outcome.__dict__))


@router.post(
    "/{pipeline_id}/cancel", response_model=Envelope[Cancelled], responses=error_responses(400, 404, 409, 422, 503)
)
async def cancel(
    pipeline_id: str,
    terminate: bool = Query(False, description="also stop the running stage"),
    gateway: PipelineGateway = Depends(pipelines),
):
    return Envelope(data=Cancelled(**await gateway.cancel(pipeline_id, terminate)))


@router.post(
    "/{pipeline_id}/retry",
    response_model=Envelope[Submitted],
    status_code=202,
    responses=error_responses(404, 409, 503),
)
async def retry(pipeline_id: str, gateway: PipelineGateway = Depends(pipelines)):
    submission = await gateway.retry(pipeline_id)
    return submitted(submission, "pipeline re-run from its failed stage")


@router.get(
    "/{pipeline_id}/events",
    response_class=EventSourceResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "`status` events (a PipelineStatus as JSON) until the pipeline ends",
        },
        **error_responses(404, 503),
    },
)
async def events(pipeline_id: str, gateway: PipelineGateway = Depends(pipelines)):
    await gateway.status(pipeline_id)  # 404 before the stream starts, not inside it

    async def stream():
        async for status in gateway.watch(pipeline_id):
            yield {"event": "status", "data": status.model_dump_json(exclude={"source"})}
        yield {"event": "end", "data": "{}"}

    return EventSourceResponse(stream(), ping=15)
