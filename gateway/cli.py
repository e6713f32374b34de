"""`aiworker`: the command line client of the gateway (REST + API key), for
people and shell scripts.

    aiworker pipelines [--json]                      aiworker submit resume cv.pdf --watch
    aiworker submit ai-pipeline --text "..."         aiworker submit <pipeline> [file] --set key=value
    aiworker watch <pipeline-id>                     aiworker status <pipeline-id> [--json]
    aiworker result <pipeline-id>                    aiworker history --hours 24 --status FAILURE
    aiworker health

Gateway URL and key: --url / AIWORKER_URL (default http://127.0.0.1:8000),
--api-key / AIWORKER_API_KEY. Exit codes: 0 ok, 1 pipeline failed or not ready,
2 usage or request error.

It is HTTP only (httpx, rich): the pipelines it offers and the states it waits
for are the gateway's, read from /api/v1/pipeline-types and /api/v1/states, so a
pipeline the server loads (AIWORKER_PIPELINE_MODULES) is known here too, and
nothing of the task code is installed or imported."""

from __future__ import annotations

import argparse
import json
import mimetypes
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console()


class ApiError(Exception):
    pass


class GatewayClient:
    def __init__(self, url: str, api_key: str | None, timeout: float = 30) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)
        self._states: dict[str, list[str]] | None = None

    def _data(self, response: httpx.Response) -> Any:
        try:
            body = response.json()
        except ValueError:
            raise ApiError(f"HTTP {response.status_code}: {response.text[:200]}") from None
        if response.status_code >= 400:
            error = body.get("error", {}) if isinstance(body, dict) else {}
            raise ApiError(f"HTTP {response.status_code} {error.get('code', '')}: {error.get('message', body)}")
        return body.get("data", body) if isinstance(body, dict) else body

    def submit(self, pipeline: str, fields: dict[str, Any], priority: int | None = None) -> dict:
        """A pipeline without files: its input as JSON."""
        body = {**fields, **({"priority": priority} if priority is not None else {})}
        return self._data(self.http.post(f"/api/v1/pipelines/{pipeline}", json=body))

    def submit_file(self, pipeline: str, path: Path, fields: dict[str, Any], priority: int | None = None) -> dict:
        """A pipeline taking one file: multipart, the other input fields beside it."""
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        form = {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
        if priority is not None:
            form["priority"] = str(priority)
        with path.open("rb") as handle:
            return self._data(
                self.http.post(
                    f"/api/v1/pipelines/{pipeline}", files={"file": (path.name, handle, content_type)}, data=form
                )
            )

    def pipeline_types(self) -> list[dict]:
        return self._data(self.http.get("/api/v1/pipeline-types"))

    def states(self) -> dict[str, list[str]]:
        """The status vocabulary (task statuses, pipeline states, which are final); read once."""
        if self._states is None:
            self._states = self._data(self.http.get("/api/v1/states"))
        return self._states

    def search(self, query: str, k: int = 5, kind: str | None = None, document_ids: list[str] | None = None) -> dict:
        body = {"query": query, "k": k, "kind": kind, "document_ids": document_ids}
        return self._data(self.http.post("/api/v1/search", json={k: v for k, v in body.items() if v}))

    def result(self, pipeline_id: str) -> dict:
        return self._data(self.http.get(f"/api/v1/pipelines/{pipeline_id}/result"))

    def status(self, pipeline_id: str) -> dict:
        return self._data(self.http.get(f"/api/v1/pipelines/{pipeline_id}"))

    def history(self, **params: Any) -> dict:
        return self._data(self.http.get("/api/v1/tasks/history", params={k: v for k, v in params.items() if v}))

    def readiness(self) -> tuple[bool, dict]:
        response = self.http.get("/readyz")
        return response.status_code == 200, response.json()

    def cancel(self, pipeline_id: str, terminate: bool) -> dict:
        return self._data(self.http.post(f"/api/v1/pipelines/{pipeline_id}/cancel", params={"terminate": terminate}))

    def retry(self, pipeline_id: str) -> dict:
        return self._data(self.http.post(f"/api/v1/pipelines/{pipeline_id}/retry"))


def watch(
    client: GatewayClient,
    pipeline_ids: list[str],
    timeout: float = 900,
    interval: float = 0.5,
    labels: dict[str, str] | None = None,
) -> dict[str, dict]:
    """Progress bars (one per pipeline, with the running stage) until all end."""
    terminal = set(client.states()["pipeline_terminal"])
    final: dict[str, dict] = {}
    columns = (
        TextColumn("{task.description:<22}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[state]:<9}"),
        TextColumn("{task.fields[stage]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        bars = {
            pid: progress.add_task((labels or {}).get(pid, pid[:8]), total=100, state="PENDING", stage="")
            for pid in pipeline_ids
        }
        deadline = time.monotonic() + timeout
        while len(final) < len(pipeline_ids) and time.monotonic() < deadline:
            for pid in pipeline_ids:
                if pid in final:
                    continue
                try:
                    status = client.status(pid)
                except ApiError as exc:
                    if "NOT_FOUND" in str(exc):  # not recorded yet
                        continue
                    raise
                running = next((t for t in status["tasks"] if not t["ready"]), None)
                stage = running["task_name"].rsplit(".", 1)[-1] if running else ""
                progress.update(bars[pid], completed=status["progress"], state=status["overall_state"], stage=stage)
                if status["overall_state"] in terminal and all(t["ready"] for t in status["tasks"]):
                    final[pid] = status
            time.sleep(interval)
    return final


def print_status(status: dict) -> None:
    table = Table(title=f"{status['pipeline']} {status['pipeline_id']}: {status['overall_state']}")
    for column in ("step", "stage", "status", "retries", "result"):
        table.add_column(column, overflow="fold")
    for task in status["tasks"]:
        table.add_row(
            str(task["step"]),
            task["task_name"],
            task["status"],
            str(task.get("retries", 0)),
            (task.get("result") or "")[:160],
        )
    console.print(table)


def _input_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The input fields given on the command line: --set key=value (JSON values allowed),
    and the shortcuts of the built-in pipelines."""
    fields: dict[str, Any] = {}
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ApiError(f"--set takes key=value, got {item!r}")
        try:
            fields[key] = json.loads(value)
        except ValueError:
            fields[key] = value
    shortcuts = {"resume_id": args.resume_id, "question": args.question, "language": args.language}
    fields.update({k: v for k, v in shortcuts.items() if v})
    if args.task:
        fields.setdefault("options", {})["task"] = args.task
    return fields


def pipeline_type(client: GatewayClient, name: str) -> dict:
    """The gateway's registry entry for `name` (its slug or name, `-` or `_`)."""
    types = client.pipeline_types()
    wanted = name.replace("-", "_")
    for entry in types:
        if wanted in (entry["name"].replace("-", "_"), entry["slug"].replace("-", "_")):
            return entry
    raise ApiError(f"unknown pipeline {name!r}; the gateway has: {', '.join(sorted(t['slug'] for t in types))}")


def _cmd_submit(client: GatewayClient, args: argparse.Namespace) -> int:
    spec = pipeline_type(client, args.pipeline)
    slug, files = spec["slug"], spec["files"]
    fields = _input_fields(args)
    if files:
        if not args.file:
            raise ApiError(f"{slug} needs a file ({files[0]['description']})")
        submitted = client.submit_file(slug, Path(args.file), fields, args.priority)
    else:
        # A pipeline taking text and no file takes it as --text, from the file named, or from stdin.
        if "text" in spec["input_schema"].get("required", []) and "text" not in fields:
            fields["text"] = (
                args.text if args.text is not None else Path(args.file).read_text() if args.file else sys.stdin.read()
            )
        elif args.file:
            raise ApiError(f"{slug} takes no file")
        elif args.text is not None:
            fields["text"] = args.text
        submitted = client.submit(slug, fields, args.priority)
    if args.json:
        print(json.dumps(submitted))
    else:
        console.print(
            f"[bold]{submitted['pipeline_id']}[/bold] {submitted['pipeline']} "
            f"(estimated {submitted['estimated_duration']:.0f} s)"
        )
    if args.watch:
        return _finish(client, [submitted["pipeline_id"]], args.json)
    return 0


def _cmd_pipelines(client: GatewayClient, args: argparse.Namespace) -> int:
    types = client.pipeline_types()
    if args.json:
        print(json.dumps(types))
        return 0
    table = Table(title=escape(f"{len(types)} pipelines (aiworker submit <pipeline> [file] --set key=value)"))
    for column in ("pipeline", "stages (queue)", "inputs ([optional])", "description"):
        table.add_column(escape(column), overflow="fold")
    for entry in types:
        schema = entry["input_schema"]
        required = set(schema.get("required", []))
        inputs = [f"{f['field']}: file, {f['description']}" for f in entry["files"]] + [
            key if key in required else f"[{key}]" for key in schema.get("properties", {})
        ]
        stages = [f"{s['task_name']} ({s['queue']})" for s in entry["stages"]]  # as `history --task-name` takes them
        table.add_row(
            *(escape(cell) for cell in (entry["slug"], "\n".join(stages), "\n".join(inputs), entry["description"]))
        )
    console.print(table)
    return 0


def _cmd_search(client: GatewayClient, args: argparse.Namespace) -> int:
    found = client.search(args.query, args.k, args.kind, args.document)
    if args.json:
        print(json.dumps(found, ensure_ascii=False))
        return 0
    table = Table(title=f"{len(found['results'])} chunks for {args.query!r} ({found['took']['search_ms']:.1f} ms)")
    for column in ("score", "kind", "document", "page", "chunk", "text"):
        table.add_column(column, overflow="fold")
    for hit in found["results"]:
        name = hit["filename"] or hit["title"] or hit["document_id"][:8]
        table.add_row(
            f"{hit['score']:.3f}", hit["kind"], name, str(hit["page"]), str(hit["chunk_index"]), hit["text"][:160]
        )
    console.print(table)
    return 0


def _cmd_result(client: GatewayClient, args: argparse.Namespace) -> int:
    outcome = client.result(args.pipeline_id)
    print(json.dumps(outcome if args.json else outcome["result"], ensure_ascii=False, indent=None if args.json else 2))
    return 0


def _finish(client: GatewayClient, pipeline_ids: list[str], as_json: bool) -> int:
    final = watch(client, pipeline_ids)
    for status in final.values():
        print(json.dumps(status)) if as_json else print_status(status)
    return 0 if len(final) == len(pipeline_ids) and all(s["overall_state"] == "SUCCESS" for s in final.values()) else 1


def _cmd_status(client: GatewayClient, args: argparse.Namespace) -> int:
    status = client.status(args.pipeline_id)
    print(json.dumps(status)) if args.json else print_status(status)
    return 0


def _cmd_history(client: GatewayClient, args: argparse.Namespace) -> int:
    page = client.history(
        hours=args.hours, status=args.status, task_name=args.task_name, pipeline=args.pipeline, limit=args.limit
    )
    if args.json:
        print(json.dumps(page))
        return 0
    table = Table(title=f"tasks of the last {args.hours:g} h")
    for column in ("created", "task", "status", "runtime s", "retries", "pipeline", "error"):
        table.add_column(column, overflow="fold")
    for task in page["items"]:
        runtime = f"{task['runtime']:.2f}" if task.get("runtime") is not None else ""
        table.add_row(
            task["created_at"][:19],
            task["task_name"],
            task["status"],
            runtime,
            str(task["retry_count"]),
            (task.get("pipeline_id") or "")[:8],
            (task.get("error_message") or "")[:60],
        )
    console.print(table)
    return 0


def _cmd_health(client: GatewayClient, args: argparse.Namespace) -> int:
    ready, body = client.readiness()
    if args.json:
        print(json.dumps(body))
        return 0 if ready else 1
    table = Table(title=f"aiworker: {'ready' if ready else 'NOT READY'}")
    for column in ("part", "status", "device", "latency ms", "detail"):
        table.add_column(column, overflow="fold")
    for name, part in body["parts"].items():
        style = "green" if part["ready"] else "red"
        table.add_row(
            name,
            f"[{style}]{part['status']}[/{style}]",
            part.get("device") or "",
            f"{part.get('latency_ms', 0):.1f}",
            part.get("detail") or "",
        )
    console.print(table)
    return 0 if ready else 1


def _cmd_cancel(client: GatewayClient, args: argparse.Namespace) -> int:
    print(json.dumps(client.cancel(args.pipeline_id, args.terminate)))
    return 0


def _cmd_retry(client: GatewayClient, args: argparse.Namespace) -> int:
    submitted = client.retry(args.pipeline_id)
    console.print(f"re-running {submitted['pipeline_id']} from its failed stage")
    return _finish(client, [submitted["pipeline_id"]], False) if args.watch else 0


def build_parser() -> argparse.ArgumentParser:
    """The commands. Nothing here asks the gateway: --help works without one, and
    `submit` checks its pipeline against the gateway's when it runs."""
    parser = argparse.ArgumentParser(prog="aiworker", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("AIWORKER_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--api-key", default=os.environ.get("AIWORKER_API_KEY"))
    sub = parser.add_subparsers(dest="command", required=True)

    pipelines = sub.add_parser("pipelines", help="the gateway's pipelines: stages, inputs (table)")
    pipelines.add_argument("--json", action="store_true")
    pipelines.set_defaults(run=_cmd_pipelines)

    submit = sub.add_parser("submit", help="submit a pipeline")
    submit.add_argument("pipeline", help="its name or slug, as `aiworker pipelines` lists them")
    submit.add_argument(
        "file", nargs="?", help="the pipeline's file; for one taking text and no file, a text file (or stdin)"
    )
    submit.add_argument("--set", action="append", metavar="KEY=VALUE", help="an input field (JSON values allowed)")
    submit.add_argument("--text", help="ai-pipeline text")
    submit.add_argument("--task", choices=["summarize", "keywords", "sentiment"], help="ai-pipeline task")
    submit.add_argument("--resume-id", help="interview-answer: compare with this resume")
    submit.add_argument("--question", help="interview-answer: the question asked")
    submit.add_argument("--language", help="interview-answer: the spoken language (default en)")
    submit.add_argument("--priority", type=int, choices=range(10), metavar="0-9", help="default: the pipeline's")
    submit.add_argument("--watch", action="store_true", help="show progress until it ends")
    submit.add_argument("--json", action="store_true")
    submit.set_defaults(run=_cmd_submit)

    for name, run, helptext in (
        ("watch", None, "progress bars until the pipeline ends"),
        ("status", _cmd_status, "a pipeline's stages"),
    ):
        command = sub.add_parser(name, help=helptext)
        command.add_argument("pipeline_id", nargs="+" if name == "watch" else None)
        command.add_argument("--json", action="store_true")
        command.set_defaults(run=run or (lambda c, a: _finish(c, a.pipeline_id, a.json)))

    result = sub.add_parser("result", help="a finished pipeline's whole result (JSON)")
    result.add_argument("pipeline_id")
    result.add_argument("--json", action="store_true", help="with the pipeline id and final task id around it")
    result.set_defaults(run=_cmd_result)

    search = sub.add_parser("search", help="the stored chunks nearest to a query (table)")
    search.add_argument("query")
    search.add_argument("-k", type=int, default=5, help="how many (1-100)")
    search.add_argument("--kind", choices=["resume", "document"])
    search.add_argument("--document", action="append", metavar="ID", help="only within this document (repeatable)")
    search.add_argument("--json", action="store_true")
    search.set_defaults(run=_cmd_search)

    history = sub.add_parser("history", help="recent tasks (table)")
    history.add_argument("--hours", type=float, default=24)
    history.add_argument("--status")
    history.add_argument("--task-name")
    history.add_argument("--pipeline")
    history.add_argument("--limit", type=int, default=50)
    history.add_argument("--json", action="store_true")
    history.set_defaults(run=_cmd_history)

    health = sub.add_parser("health", help="services, Redis, PostgreSQL, workers (table)")
    health.add_argument("--json", action="store_true")
    health.set_defaults(run=_cmd_health)

    cancel = sub.add_parser("cancel", help="revoke what has not run yet")
    cancel.add_argument("pipeline_id")
    cancel.add_argument("--terminate", action="store_true", help="also stop the running stage")
    cancel.set_defaults(run=_cmd_cancel)

    retry = sub.add_parser("retry", help="re-run a failed pipeline from its failed stage")
    retry.add_argument("pipeline_id")
    retry.add_argument("--watch", action="store_true")
    retry.set_defaults(run=_cmd_retry)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    client = GatewayClient(args.url, args.api_key)
    try:
        code = args.run(client, args)
    except ApiError as exc:
        console.print(f"[red]error:[/red] {exc}")
        code = 2
    except httpx.HTTPError as exc:
        console.print(f"[red]error:[/red] cannot reach the gateway at {args.url}: {exc}")
        code = 2
    except OSError as exc:
        console.print(f"[red]error:[/red] {exc}")
        code = 2
    sys.exit(code)


if __name__ == "__main__":
    main()
