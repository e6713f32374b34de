"""`make demo`: one of each pipeline with the samples in deploy/samples, live
progress bars, the results, and an exit code that says whether all succeeded."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from gateway.cli import GatewayClient, print_status, watch

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
console = Console()


def run_demo(url: str, api_key: str) -> bool:
    client = GatewayClient(url, api_key, timeout=60)
    first = {
        client.submit_file("resume", SAMPLES / "resume.pdf", {}, 5)["pipeline_id"]: "resume",
        client.submit_file("document", SAMPLES / "document.pdf", {}, 5)["pipeline_id"]: "document",
        client.submit_text((SAMPLES / "ai_text.txt").read_text(), {"task": "summarize"}, 5)["pipeline_id"]: "ai-pipeline",
    }
    console.rule("resume, document and AI pipelines")
    finals = watch(client, list(first), labels=first)
    resume_id = next(pid for pid, name in first.items() if name == "resume")
    answer = client.submit_file("interview-answer", SAMPLES / "answer.wav",
                                {"resume_id": resume_id, "question": "Tell me about a pipeline you built."}, 5)
    console.rule("interview answer (compared with the resume)")
    finals.update(watch(client, [answer["pipeline_id"]], labels={answer["pipeline_id"]: "interview-answer"}))
    console.rule("results")
    for status in finals.values():
        print_status(status)
        _highlights(client, status)
    ok = len(finals) == 4 and all(s["overall_state"] == "SUCCESS" for s in finals.values())
    console.print(f"[bold {'green' if ok else 'red'}]{'all 4 pipelines succeeded' if ok else 'a pipeline failed'}")
    return ok


def _highlights(client: GatewayClient, status: dict) -> None:
    """The interesting fields of each pipeline's final result (full results: history)."""
    if status["overall_state"] != "SUCCESS":
        return
    page = client.history(hours=1, task_name=status["tasks"][-1]["task_name"], limit=50)
    record = next((t for t in page["items"] if t["task_id"] == status["tasks"][-1]["task_id"]), None)
    result = record and record.get("result")
    if isinstance(result, dict):
        keep = {k: result[k] for k in ("chunks", "title", "follow_up_question", "transcript", "evaluation",
                                       "output") if k in result}
        console.print_json(json.dumps(keep, ensure_ascii=False, default=str))
