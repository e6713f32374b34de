"""Vector search (REST, gRPC, CLI) and the document Q&A pipeline, on documents
stored through the document pipeline, with the bundled embedder and LLM."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from sqlalchemy import text

from aiworker.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from orchestrator.storage.db import engine_for
from orchestrator.tracking.states import PIPELINE_TERMINAL
from tests.support.keys import API_KEY

AIWORKER = str(Path(sys.executable).parent / "aiworker")
DOCUMENTS = {
    "kitchen.txt": "The office kitchen has a coffee machine and a fridge. Clean the coffee machine every Friday. "
    "Milk is delivered on Mondays.",
    "deploy.txt": "To deploy the gateway, build the image and apply the Kubernetes manifests with kubectl. "
    "Roll back with kubectl rollout undo when the readiness probe fails.",
    "vacation.txt": "Employees get twenty-five vacation days a year. Ask your manager two weeks before a holiday.",
}


def wait_done(client, pipeline_id: str, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = client.get(f"/api/v1/pipelines/{pipeline_id}").json()["data"]
        if data["overall_state"] in PIPELINE_TERMINAL and all(t["ready"] for t in data["tasks"]):
            return data
        time.sleep(0.3)
    raise TimeoutError(pipeline_id)


@pytest.fixture(scope="module")
def stored(gateway) -> dict[str, str]:
    """filename → document id (the pipeline id), each stored by the document pipeline."""
    ids = {}
    with gateway.client() as client:
        for name, body in DOCUMENTS.items():
            response = client.post("/api/v1/pipelines/document", files={"file": (name, body.encode(), "text/plain")})
            assert response.status_code == 202, response.text
            ids[name] = response.json()["data"]["pipeline_id"]
        for pipeline_id in ids.values():
            assert wait_done(client, pipeline_id)["overall_state"] == "SUCCESS"
    return ids


def test_chunks_are_pgvector_vectors_behind_an_hnsw_index(stack):
    with engine_for(stack.settings.database_url).connect() as conn:
        column = conn.execute(
            text(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = 'chunks'::regclass AND attname = 'embedding'"
            )
        ).scalar()
        index = conn.execute(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_chunks_embedding_hnsw'")
        ).scalar()
        conn.execute(text("SET enable_seqscan = off"))
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                text(
                    "EXPLAIN SELECT id FROM chunks "
                    "ORDER BY embedding <=> (SELECT embedding FROM chunks LIMIT 1) LIMIT 5"
                )
            )
        )
    assert column == "vector(384)"
    assert "USING hnsw (embedding vector_cosine_ops)" in index
    assert "ix_chunks_embedding_hnsw" in plan


def test_search_finds_the_passage_that_answers(client, stored):
    response = client.post("/api/v1/search", json={"query": "how do I roll back a failed deployment?", "k": 3})
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    best = data["results"][0]
    assert best["document_id"] == stored["deploy.txt"] and "rollout undo" in best["text"]
    assert best["kind"] == "document" and best["filename"] == "deploy.txt" and 0 < best["score"] <= 1
    assert [r["score"] for r in data["results"]] == sorted((r["score"] for r in data["results"]), reverse=True)
    assert data["took"]["embed_ms"] > 0 and data["took"]["search_ms"] > 0
    within = client.post("/api/v1/search", json={"query": "coffee", "document_ids": [stored["vacation.txt"]]})
    assert {r["document_id"] for r in within.json()["data"]["results"]} == {stored["vacation.txt"]}
    resumes = client.post("/api/v1/search", json={"query": "coffee", "kind": "resume"}).json()["data"]["results"]
    assert all(r["kind"] == "resume" for r in resumes)
    for body, field in (
        ({"query": ""}, "query"),
        ({"query": "x", "k": 0}, "k"),
        ({"query": "x", "k": 101}, "k"),
        ({"query": "x", "kind": "poem"}, "kind"),
    ):
        bad = client.post("/api/v1/search", json=body)
        assert bad.status_code == 422 and field in bad.json()["error"]["message"], bad.text


def test_search_over_grpc_and_the_cli(gateway, stored):
    channel = grpc.insecure_channel(gateway.grpc_address)
    stub = gateway_pb2_grpc.GatewayStub(channel)
    auth = (("authorization", f"Bearer {API_KEY}"),)
    reply = stub.Search(gateway_pb2.SearchRequest(query="vacation days per year", k=2), metadata=auth, timeout=30)
    assert reply.results[0].document_id == stored["vacation.txt"] and reply.search_ms > 0
    with pytest.raises(grpc.RpcError) as bad:
        stub.Search(gateway_pb2.SearchRequest(query=" "), metadata=auth, timeout=30)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    channel.close()
    env = {**os.environ, "AIWORKER_URL": gateway.url, "AIWORKER_API_KEY": API_KEY}
    out = subprocess.run(
        [AIWORKER, "search", "coffee machine cleaning", "-k", "1", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["results"][0]["document_id"] == stored["kitchen.txt"]


def test_document_qa_streams_its_answer_and_cites_its_sources(client, gateway, stored):
    ask = {
        "question": "What day is milk delivered?",
        "document_ids": list(stored.values()),
        "k": 2,
        "max_new_tokens": 64,
    }
    response = client.post("/api/v1/pipelines/document-qa", json=ask)
    assert response.status_code == 202, response.text
    pipeline_id = response.json()["data"]["pipeline_id"]
    partials = []
    with client.stream("GET", f"/api/v1/pipelines/{pipeline_id}/events", timeout=240) as events:
        for line in events.iter_lines():
            if line.startswith("data:") and '"partial_output"' in line:
                status = json.loads(line[5:])
                if status.get("partial_output"):
                    partials.append(status["partial_output"])
    status = wait_done(client, pipeline_id)
    assert status["overall_state"] == "SUCCESS" and [t["queue"] for t in status["tasks"]] == ["gpu_queue"] * 2
    result = client.get(f"/api/v1/pipelines/{pipeline_id}/result").json()["data"]["result"]
    assert result["answer"] and result["completion_tokens"] > 0
    assert partials and all(result["answer"].startswith(p.strip()[:20]) for p in partials)  # grew as it was written
    sources = {c["document_id"] for c in result["citations"]}
    assert stored["kitchen.txt"] in sources
    assert all({"document_id", "page", "chunk_index", "n"} <= set(c) for c in result["citations"])


def test_the_ai_pipeline_reads_related_stored_passages_when_asked(client, stored):
    text = "Our team plans a Kubernetes deployment of the gateway next week."
    with_context = client.post("/api/v1/pipelines/ai-pipeline", json={"text": text, "options": {"use_context": True}})
    without = client.post("/api/v1/pipelines/ai-pipeline", json={"text": text})
    ids = [r.json()["data"]["pipeline_id"] for r in (with_context, without)]
    for pipeline_id in ids:
        assert wait_done(client, pipeline_id)["overall_state"] == "SUCCESS"
    used, unused = (client.get(f"/api/v1/pipelines/{p}/result").json()["data"]["result"]["output"] for p in ids)
    assert used["context"] and used["context"][0]["document_id"] == stored["deploy.txt"]
    assert unused["context"] == []
    bad = client.post("/api/v1/pipelines/ai-pipeline", json={"text": "x", "options": {"use_context": "yes"}})
    assert bad.status_code == 422 and "use_context" in bad.json()["error"]["message"]


def test_a_file_stored_twice_is_found_once_from_its_newest_copy(client, stored):
    """Last in this module: the kitchen note's newer copy takes its place in searches."""
    again = client.post(
        "/api/v1/pipelines/document", files={"file": ("kitchen.txt", DOCUMENTS["kitchen.txt"].encode(), "text/plain")}
    )
    assert again.status_code == 202, again.text
    copy = again.json()["data"]["pipeline_id"]
    assert wait_done(client, copy)["overall_state"] == "SUCCESS"
    found = client.post("/api/v1/search", json={"query": "coffee machine cleaning", "k": 5}).json()["data"]["results"]
    kitchen = [r for r in found if "coffee machine" in r["text"]]
    assert [r["document_id"] for r in kitchen] == [copy], found
    assert len(found) == len({(r["filename"], r["chunk_index"], r["text"]) for r in found})
    within_both = client.post(
        "/api/v1/search", json={"query": "coffee", "document_ids": [stored["kitchen.txt"], copy], "k": 3}
    ).json()["data"]["results"]
    assert [r["document_id"] for r in within_both] == [copy]
    older_alone = client.post("/api/v1/search", json={"query": "coffee", "document_ids": [stored["kitchen.txt"]]})
    assert [r["document_id"] for r in older_alone.json()["data"]["results"]] == [stored["kitchen.txt"]]
