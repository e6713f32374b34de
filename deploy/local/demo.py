"""`make demo`: one of each pipeline with the samples in deploy/samples, live
progress bars, the results, and an exit code that says whether all succeeded."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from gateway.cli import GatewayClient, print_status, watch

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
console = Console(soft_wrap=True)  # one line per message, so a log of it can be searched


def run_demo(url: str, api_key: str) -> bool:
    client = GatewayClient(url, api_key, timeout=60)
    first = {
        client.submit_file("resume", SAMPLES / "resume.pdf", {})["pipeline_id"]: "resume",
        client.submit_file("document", SAMPLES / "document.pdf", {})["pipeline_id"]: "document",
        client.submit("ai-pipeline", {"text": (SAMPLES / "ai_text.txt").read_text(), "options": {"task": "summarize"}})[
            "pipeline_id"
        ]: "ai-pipeline",
    }
    console.rule("resume, document and AI pipelines")
    finals = watch(client, list(first), labels=first)
    resume_id = next(pid for pid, name in first.items() if name == "resume")
    answer = client.submit_file(
        "interview-answer",
        SAMPLES / "answer.wav",
        {"resume_id": resume_id, "question": "Tell me about a pipeline you built."},
    )
    document_id = next(pid for pid, name in first.items() if name == "document")
    question = client.submit(
        "document-qa", {"question": "What happens when a model service restarts?", "document_ids": [document_id]}
    )
    console.rule("interview answer (compared with the resume) and a question on the handbook")
    labels = {answer["pipeline_id"]: "interview-answer", question["pipeline_id"]: "document-qa"}
    finals.update(watch(client, list(labels), labels=labels))
    console.rule("search: what happens to a task killed with its worker?")
    found = client.search("what happens to a task killed with its worker?", k=2)
    for hit in found["results"]:
        console.print(f"  {hit['score']:.3f}  {hit['filename'] or hit['kind']} p.{hit['page']}: {hit['text'][:120]}")
    console.rule("results")
    for status in finals.values():
        print_status(status)
        _highlights(client, status)
    ok = len(finals) == 5 and all(s["overall_state"] == "SUCCESS" for s in finals.values()) and bool(found["results"])
    console.print(f"[bold {'green' if ok else 'red'}]{'all 5 pipelines succeeded' if ok else 'something failed'}")
    return ok


def _highlights(client: GatewayClient, status: dict) -> None:
    """The interesting fields of each pipeline's whole result (`aiworker result <id>`)."""
    if status["overall_state"] != "SUCCESS":
        return
    result = client.result(status["pipeline_id"])["result"]
    if isinstance(result, dict):
        keep = {
            k: result[k]
            for k in (
                "chunks",
                "title",
                "follow_up_question",
                "transcript",
                "evaluation",
                "output",
                "answer",
                "citations",
            )
            if k in result
        }
        if "evaluation" in keep:  # the score and why, not the whole evidence
            evaluation = keep["evaluation"]
            keep["evaluation"] = {
                "score": evaluation.get("score"),
                "signals": (evaluation.get("breakdown") or {}).get("signals"),
                "notes": evaluation.get("notes"),
                "feedback": evaluation.get("feedback"),
                "feedback_source": evaluation.get("feedback_source"),
            }
        console.print_json(json.dumps(keep, ensure_ascii=False, default=str))
