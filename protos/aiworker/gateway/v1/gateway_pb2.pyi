import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class UploadedFile(_message.Message):
    __slots__ = ("field", "filename", "content_type", "data")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    field: str
    filename: str
    content_type: str
    data: bytes
    def __init__(self, field: _Optional[str] = ..., filename: _Optional[str] = ..., content_type: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class SubmitPipelineRequest(_message.Message):
    __slots__ = ("pipeline", "input", "files", "priority")
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    pipeline: str
    input: _struct_pb2.Struct
    files: _containers.RepeatedCompositeFieldContainer[UploadedFile]
    priority: int
    def __init__(self, pipeline: _Optional[str] = ..., input: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., files: _Optional[_Iterable[_Union[UploadedFile, _Mapping]]] = ..., priority: _Optional[int] = ...) -> None: ...

class SubmitPipelineResponse(_message.Message):
    __slots__ = ("pipeline_id", "status", "estimated_duration_s", "task_ids")
    PIPELINE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_DURATION_S_FIELD_NUMBER: _ClassVar[int]
    TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    pipeline_id: str
    status: str
    estimated_duration_s: float
    task_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, pipeline_id: _Optional[str] = ..., status: _Optional[str] = ..., estimated_duration_s: _Optional[float] = ..., task_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GetPipelineStatusRequest(_message.Message):
    __slots__ = ("pipeline_id",)
    PIPELINE_ID_FIELD_NUMBER: _ClassVar[int]
    pipeline_id: str
    def __init__(self, pipeline_id: _Optional[str] = ...) -> None: ...

class StageStatus(_message.Message):
    __slots__ = ("task_id", "task_name", "status", "step", "ready", "result", "error_type", "retries", "worker", "runtime_s")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    RETRIES_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_S_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    task_name: str
    status: str
    step: int
    ready: bool
    result: str
    error_type: str
    retries: int
    worker: str
    runtime_s: float
    def __init__(self, task_id: _Optional[str] = ..., task_name: _Optional[str] = ..., status: _Optional[str] = ..., step: _Optional[int] = ..., ready: _Optional[bool] = ..., result: _Optional[str] = ..., error_type: _Optional[str] = ..., retries: _Optional[int] = ..., worker: _Optional[str] = ..., runtime_s: _Optional[float] = ...) -> None: ...

class PipelineStatus(_message.Message):
    __slots__ = ("pipeline_id", "pipeline", "overall_state", "total_steps", "completed_steps", "progress", "message", "tasks", "created_at", "partial_output", "trace_id")
    PIPELINE_ID_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    OVERALL_STATE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_STEPS_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    pipeline_id: str
    pipeline: str
    overall_state: str
    total_steps: int
    completed_steps: int
    progress: float
    message: str
    tasks: _containers.RepeatedCompositeFieldContainer[StageStatus]
    created_at: _timestamp_pb2.Timestamp
    partial_output: str
    trace_id: str
    def __init__(self, pipeline_id: _Optional[str] = ..., pipeline: _Optional[str] = ..., overall_state: _Optional[str] = ..., total_steps: _Optional[int] = ..., completed_steps: _Optional[int] = ..., progress: _Optional[float] = ..., message: _Optional[str] = ..., tasks: _Optional[_Iterable[_Union[StageStatus, _Mapping]]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., partial_output: _Optional[str] = ..., trace_id: _Optional[str] = ...) -> None: ...

class GetPipelineResultRequest(_message.Message):
    __slots__ = ("pipeline_id",)
    PIPELINE_ID_FIELD_NUMBER: _ClassVar[int]
    pipeline_id: str
    def __init__(self, pipeline_id: _Optional[str] = ...) -> None: ...

class PipelineResult(_message.Message):
    __slots__ = ("pipeline_id", "pipeline", "task_id", "result")
    PIPELINE_ID_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    pipeline_id: str
    pipeline: str
    task_id: str
    result: _struct_pb2.Value
    def __init__(self, pipeline_id: _Optional[str] = ..., pipeline: _Optional[str] = ..., task_id: _Optional[str] = ..., result: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...

class WatchPipelineRequest(_message.Message):
    __slots__ = ("pipeline_id",)
    PIPELINE_ID_FIELD_NUMBER: _ClassVar[int]
    pipeline_id: str
    def __init__(self, pipeline_id: _Optional[str] = ...) -> None: ...

class ListTasksRequest(_message.Message):
    __slots__ = ("hours", "status", "task_name", "pipeline", "limit", "cursor")
    HOURS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TASK_NAME_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    hours: float
    status: str
    task_name: str
    pipeline: str
    limit: int
    cursor: str
    def __init__(self, hours: _Optional[float] = ..., status: _Optional[str] = ..., task_name: _Optional[str] = ..., pipeline: _Optional[str] = ..., limit: _Optional[int] = ..., cursor: _Optional[str] = ...) -> None: ...

class TaskRecord(_message.Message):
    __slots__ = ("task_id", "task_name", "status", "pipeline_id", "pipeline", "queue", "worker", "retry_count", "error_type", "error_message", "created_at", "started_at", "completed_at", "runtime_s", "result_json")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_ID_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    RETRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_S_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    task_name: str
    status: str
    pipeline_id: str
    pipeline: str
    queue: str
    worker: str
    retry_count: int
    error_type: str
    error_message: str
    created_at: _timestamp_pb2.Timestamp
    started_at: _timestamp_pb2.Timestamp
    completed_at: _timestamp_pb2.Timestamp
    runtime_s: float
    result_json: str
    def __init__(self, task_id: _Optional[str] = ..., task_name: _Optional[str] = ..., status: _Optional[str] = ..., pipeline_id: _Optional[str] = ..., pipeline: _Optional[str] = ..., queue: _Optional[str] = ..., worker: _Optional[str] = ..., retry_count: _Optional[int] = ..., error_type: _Optional[str] = ..., error_message: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., runtime_s: _Optional[float] = ..., result_json: _Optional[str] = ...) -> None: ...

class ListTasksResponse(_message.Message):
    __slots__ = ("tasks", "next_cursor")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[TaskRecord]
    next_cursor: str
    def __init__(self, tasks: _Optional[_Iterable[_Union[TaskRecord, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("query", "k", "document_ids", "kind")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_IDS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    query: str
    k: int
    document_ids: _containers.RepeatedScalarFieldContainer[str]
    kind: str
    def __init__(self, query: _Optional[str] = ..., k: _Optional[int] = ..., document_ids: _Optional[_Iterable[str]] = ..., kind: _Optional[str] = ...) -> None: ...

class SearchHit(_message.Message):
    __slots__ = ("document_id", "kind", "filename", "title", "chunk_index", "page", "text", "score")
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    CHUNK_INDEX_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    document_id: str
    kind: str
    filename: str
    title: str
    chunk_index: int
    page: int
    text: str
    score: float
    def __init__(self, document_id: _Optional[str] = ..., kind: _Optional[str] = ..., filename: _Optional[str] = ..., title: _Optional[str] = ..., chunk_index: _Optional[int] = ..., page: _Optional[int] = ..., text: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("results", "embed_ms", "search_ms")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    EMBED_MS_FIELD_NUMBER: _ClassVar[int]
    SEARCH_MS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[SearchHit]
    embed_ms: float
    search_ms: float
    def __init__(self, results: _Optional[_Iterable[_Union[SearchHit, _Mapping]]] = ..., embed_ms: _Optional[float] = ..., search_ms: _Optional[float] = ...) -> None: ...

class GetMetricsRequest(_message.Message):
    __slots__ = ("window_hours",)
    WINDOW_HOURS_FIELD_NUMBER: _ClassVar[int]
    window_hours: float
    def __init__(self, window_hours: _Optional[float] = ...) -> None: ...

class TaskNameMetrics(_message.Message):
    __slots__ = ("task_name", "total", "succeeded", "failed", "success_rate", "mean_seconds", "p95_seconds", "retries")
    TASK_NAME_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_RATE_FIELD_NUMBER: _ClassVar[int]
    MEAN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    P95_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RETRIES_FIELD_NUMBER: _ClassVar[int]
    task_name: str
    total: int
    succeeded: int
    failed: int
    success_rate: float
    mean_seconds: float
    p95_seconds: float
    retries: int
    def __init__(self, task_name: _Optional[str] = ..., total: _Optional[int] = ..., succeeded: _Optional[int] = ..., failed: _Optional[int] = ..., success_rate: _Optional[float] = ..., mean_seconds: _Optional[float] = ..., p95_seconds: _Optional[float] = ..., retries: _Optional[int] = ...) -> None: ...

class MetricsSummary(_message.Message):
    __slots__ = ("window_hours", "total_tasks", "success_rate", "retries", "chain_completion_rate", "by_task", "errors_by_type", "queue_depth", "queue_oldest_seconds", "unacked", "by_pipeline")
    class ErrorsByTypeEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class QueueDepthEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class QueueOldestSecondsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    WINDOW_HOURS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TASKS_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_RATE_FIELD_NUMBER: _ClassVar[int]
    RETRIES_FIELD_NUMBER: _ClassVar[int]
    CHAIN_COMPLETION_RATE_FIELD_NUMBER: _ClassVar[int]
    BY_TASK_FIELD_NUMBER: _ClassVar[int]
    ERRORS_BY_TYPE_FIELD_NUMBER: _ClassVar[int]
    QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    QUEUE_OLDEST_SECONDS_FIELD_NUMBER: _ClassVar[int]
    UNACKED_FIELD_NUMBER: _ClassVar[int]
    BY_PIPELINE_FIELD_NUMBER: _ClassVar[int]
    window_hours: float
    total_tasks: int
    success_rate: float
    retries: int
    chain_completion_rate: float
    by_task: _containers.RepeatedCompositeFieldContainer[TaskNameMetrics]
    errors_by_type: _containers.ScalarMap[str, int]
    queue_depth: _containers.ScalarMap[str, int]
    queue_oldest_seconds: _containers.ScalarMap[str, float]
    unacked: int
    by_pipeline: _containers.RepeatedCompositeFieldContainer[PipelineMetrics]
    def __init__(self, window_hours: _Optional[float] = ..., total_tasks: _Optional[int] = ..., success_rate: _Optional[float] = ..., retries: _Optional[int] = ..., chain_completion_rate: _Optional[float] = ..., by_task: _Optional[_Iterable[_Union[TaskNameMetrics, _Mapping]]] = ..., errors_by_type: _Optional[_Mapping[str, int]] = ..., queue_depth: _Optional[_Mapping[str, int]] = ..., queue_oldest_seconds: _Optional[_Mapping[str, float]] = ..., unacked: _Optional[int] = ..., by_pipeline: _Optional[_Iterable[_Union[PipelineMetrics, _Mapping]]] = ...) -> None: ...

class PipelineMetrics(_message.Message):
    __slots__ = ("pipeline", "total", "completed", "failed", "success_rate", "mean_seconds", "p95_seconds")
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_RATE_FIELD_NUMBER: _ClassVar[int]
    MEAN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    P95_SECONDS_FIELD_NUMBER: _ClassVar[int]
    pipeline: str
    total: int
    completed: int
    failed: int
    success_rate: float
    mean_seconds: float
    p95_seconds: float
    def __init__(self, pipeline: _Optional[str] = ..., total: _Optional[int] = ..., completed: _Optional[int] = ..., failed: _Optional[int] = ..., success_rate: _Optional[float] = ..., mean_seconds: _Optional[float] = ..., p95_seconds: _Optional[float] = ...) -> None: ...
