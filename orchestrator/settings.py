"""Orchestrator settings (env prefix AIWORKER_), shared by workers, beat and
any producer (the gateway)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, create_model, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from orchestrator import keys
from svc_runtime.catalogue import SERVICES, replicas

# One address setting per catalogued service (AIWORKER_PARSER_ADDRESS, ...), derived from the
# catalogue so a new service gets its setting with no edit here.
_ServiceAddresses = create_model(
    "_ServiceAddresses",
    __base__=BaseSettings,
    **{
        entry.address_setting: (
            str,
            Field(
                entry.default_address,
                description=f"svc-{entry.name}: host:port, replicas as host1:port,host2:port, "
                "or a gRPC target such as dns:///name:port",
            ),
        )
        for entry in SERVICES.values()
    },
)


class OrchestratorSettings(_ServiceAddresses):
    model_config = SettingsConfigDict(env_prefix="AIWORKER_", extra="ignore", populate_by_name=True)

    broker_url: str = Field("redis://127.0.0.1:6379/0", description="Celery broker (Redis)")
    result_backend: str = Field("", description="Celery result backend; empty = the broker URL")
    redis_url: str = Field("", description="Redis for live progress hashes; empty = the broker URL")
    database_url: str = Field(
        "postgresql+psycopg://postgres@127.0.0.1:5432/aiworker",
        description="PostgreSQL (SQLAlchemy URL): tracking, chunks and vectors",
    )

    max_message_bytes: int = Field(64 * 1024 * 1024, description="gRPC message limit used by the clients")
    grpc_keepalive_seconds: float = Field(
        10.0, ge=5, description="clients ping each service connection this often (a silent replica is dropped)"
    )
    grpc_keepalive_timeout_seconds: float = Field(
        5.0, gt=0, description="a ping unanswered this long closes the connection; its calls fail and retry"
    )

    task_soft_time_limit: int = Field(540, ge=1, description="seconds before SoftTimeLimitExceeded")
    task_time_limit: int = Field(600, ge=1, description="seconds before the pool child is killed")
    visibility_timeout: int = Field(
        0, ge=0, description="seconds before an unacked task is redelivered; 0 = time limit + 60"
    )
    redelivery_sweep_seconds: int = Field(
        10,
        ge=1,
        description="how often a worker looks for tasks unacked past the visibility timeout "
        "(a crashed worker's) and puts them back on their queue",
    )
    lost_task_after_seconds: float = Field(
        60,
        gt=0,
        description="a stage tracked PENDING this long that is in no queue, unacked by no worker and "
        "unknown to the result backend is sent again (a worker killed right after taking it from Redis)",
    )
    lost_task_check_seconds: float = Field(30, gt=0, description="how often beat looks for such lost stages")
    publish_retry_seconds: float = Field(
        60,
        gt=0,
        description="how long a worker keeps trying to publish a pipeline's next stage while the "
        "broker is away (within the task's time limit)",
    )
    result_expires: int = Field(86400, ge=60, description="seconds results stay in the backend")
    max_retries: int = Field(
        3, ge=0, description="retries of a stage on UNAVAILABLE/DEADLINE_EXCEEDED/RESOURCE_EXHAUSTED"
    )
    retry_backoff_seconds: float = Field(1.0, gt=0, description="first retry delay; doubles each retry")
    retry_backoff_max_seconds: float = Field(30.0, gt=0, description="cap on the retry delay")
    worker_concurrency: int = Field(2, ge=1, description="pool processes per worker")
    worker_max_tasks_per_child: int = Field(1000, ge=1)
    worker_send_events: bool = Field(True, description="task events for celery events / Flower")

    blob_url: str = Field(
        "var/blobs",
        description="where blobs (uploads, vectors, stage outputs) live: a folder shared by every process "
        "(one machine), or s3://bucket/prefix on any S3-compatible store",
    )
    s3_endpoint_url: str = Field("", description="the S3 API's URL for s3:// blob URLs (empty = AWS)")
    # The standard AWS variables (unprefixed), as every S3 tool reads them; empty = boto3's own chain
    # (a profile, an instance or pod role).
    s3_access_key_id: str = Field("", validation_alias="AWS_ACCESS_KEY_ID", description="S3 access key id")
    s3_secret_access_key: SecretStr = Field(
        SecretStr(""), validation_alias="AWS_SECRET_ACCESS_KEY", description="S3 secret access key"
    )
    s3_region: str = Field("", validation_alias="AWS_REGION", description="S3 region (empty = boto3's default)")
    max_blob_bytes: int = Field(64 * 1024 * 1024, description="largest upload stored")
    blob_retention_hours: float = Field(24 * 7, gt=0, description="blobs older than this are removed")
    pipeline_hash_ttl: int = Field(3600, ge=1, description="seconds a pipeline's live progress hash lives")
    task_retention_days: float = Field(30, gt=0, description="tracked task rows older than this are removed")
    cleanup_interval_seconds: float = Field(3600, gt=0, description="how often beat runs the cleanup")
    beat_lock_seconds: float = Field(
        30, ge=3, description="the beat lease: a standby beat takes over this long after the active one died"
    )

    tracking_enabled: bool = Field(True, description="record every task from Celery signals (orchestrator.tracking)")
    tracking_database_url: str = Field("", description="PostgreSQL for task records; empty = database_url")
    tracking_outbox: str = Field(keys.DEFAULT_OUTBOX, description="Redis stream buffering tracking events")
    tracking_group: str = Field("tracking-writers", description="consumer group of the drainers on the outbox")
    tracking_batch_size: int = Field(500, ge=1, description="outbox events written to PostgreSQL per transaction")
    tracking_drain_in_worker: bool = Field(True, description="each worker's main process runs a drainer thread")
    tracking_claim_idle_seconds: float = Field(60, gt=0, description="events a drainer held this long are taken over")
    tracking_live_ttl: int = Field(3600, ge=1, description="seconds a task's live Redis hash lives")
    tracking_mask_keys: str = Field("", description="comma-separated extra key names whose values are masked")
    tracking_max_value_chars: int = Field(200, ge=16, description="longer strings are stored as a summary")
    tracking_max_items: int = Field(32, ge=1, description="longer lists/dicts are stored as a summary")
    tracking_spool_dir: Path = Field(Path("var/tracking-spool"), description="events land here while Redis is away")

    pipeline_modules: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="comma-separated modules imported at start that declare more pipelines (their tasks and "
        "a orchestrator.pipelines.registry.register() call): workers, beat and the gateway must all name them",
    )

    embedding_dimension: int = Field(
        384,
        ge=1,
        le=16000,
        description="dimension of the stored chunk vectors: the embedder's (384 for the bundled "
        "all-MiniLM-L6-v2); set before the first migration, fixed after it",
    )
    search_ef: int = Field(
        100, ge=10, description="HNSW candidates a search considers (hnsw.ef_search); more: better recall, slower"
    )
    chunk_chars: int = Field(800, ge=100, description="target chunk size (characters) for embedding")
    chunk_overlap: int = Field(100, ge=0, description="characters shared by neighbouring chunks")
    llm_max_new_tokens: int = Field(96, ge=1, description="tokens the pipeline LLM stages generate at most")

    log_level: str = Field("info")
    log_format: str = Field("auto")

    @field_validator(*(entry.address_setting for entry in SERVICES.values()))
    @classmethod
    def _replicas(cls, value: str) -> str:
        replicas(value)  # raises on an empty or mixed list
        return value

    @field_validator("pipeline_modules", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    def address_of(self, service: str) -> str:
        """Where the catalogued `service` is (svc_runtime.catalogue)."""
        return getattr(self, SERVICES[service].address_setting)

    @model_validator(mode="after")
    def _derived(self) -> OrchestratorSettings:
        if self.task_soft_time_limit >= self.task_time_limit:
            raise ValueError("task_soft_time_limit must be below task_time_limit")
        if not self.visibility_timeout:
            self.visibility_timeout = self.task_time_limit + 60
        if self.visibility_timeout <= self.task_time_limit:
            raise ValueError("visibility_timeout must exceed task_time_limit, or tasks run twice")
        self.result_backend = self.result_backend or self.broker_url
        self.redis_url = self.redis_url or self.broker_url
        self.tracking_database_url = self.tracking_database_url or self.database_url
        return self
