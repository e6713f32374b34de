"""Vector search through the gateway on 100k and 1M stored chunks, against the
same search in-process, in one run.

    .venv/bin/python -m bench.search [--chunks 100000,1000000] [--repeat 200]

For each size: a scratch database (PostgreSQL with pgvector; pgserver's when the
local server has none) filled in SQL with 384-d vectors drawn around 2,000
random centres (real embeddings cluster; uniform noise would not), one
document per 100 chunks, half of them resumes; then the HNSW index is built
(timed), an `aiworker-gateway` and the bundled svc-embedder are started, and
queries (random real chunk texts of the fill's vocabulary) are sent to
`POST /api/v1/search`:
- gateway: the whole call over HTTP (embedding + search + JSON);
- search: the part the gateway reports as `took.search_ms` (PostgreSQL alone);
- embed: `took.embed_ms` (svc-embedder), reported apart as the issue asks;
- baseline: orchestrator.storage.db.documents.search in this process on the same vectors.
Target: search p95 ≤ 20 ms at 1M chunks (embedding excluded). Recall@10 of the
index against an exact scan is reported too. Writes bench/results/search.json."""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from aiworker_local.gateway_process import start_gateway
from aiworker_local.services import start_service
from bench.common import report, summary
from bench.tracking import scratch_database
from orchestrator.settings import OrchestratorSettings
from orchestrator.storage.db import session_scope
from orchestrator.storage.db.documents import search

API_KEY = "bench-search-key-0123456789"
TARGET_P95_MS = 20.0
TARGET_CHUNKS = 1_000_000
DIMENSION = 384
CENTRES = 2000
WORDS = "queue worker broker retry vector chunk embedding tracking replica gateway resume pipeline".split()

FILL_SQL = """
CREATE TEMP TABLE centres AS
  SELECT c AS id, (SELECT array_agg(random() - 0.5) FROM generate_series(1, {dim}) WHERE c > 0) AS v
  FROM generate_series(1, {centres}) AS c;
INSERT INTO documents (id, kind, source, filename, title, page_count, embedding_model, metadata, pipeline_id)
  SELECT 'doc-' || d, CASE WHEN d % 2 = 0 THEN 'resume' ELSE 'document' END, 'blob:bench', 'doc-' || d || '.pdf',
         'bench ' || d, 1, 'bench', '{{}}', 'doc-' || d
  FROM generate_series(0, {documents} - 1) AS d;
INSERT INTO chunks (document_id, index, page, text, embedding)
  SELECT 'doc-' || (i / 100), i % 100, 1, 'chunk ' || i || ' ' || (ARRAY[{words}])[1 + i % {nwords}],
         (SELECT array_agg(cv + (random() - 0.5) * 0.3) FROM unnest(c.v) AS cv)::vector
  FROM generate_series(0, {chunks} - 1) AS i
  JOIN centres c ON c.id = 1 + (i::bigint * 7919) % {centres};
"""


def fill(database_url: str, chunks: int) -> dict[str, float]:
    """The rows, then the HNSW index (as the migration declares it), timed."""
    dsn = database_url.replace("+psycopg", "")
    words = ",".join(f"'{w}'" for w in WORDS)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP INDEX ix_chunks_embedding_hnsw")  # bulk load first, then build once
        started = time.perf_counter()
        conn.execute(
            FILL_SQL.format(
                dim=DIMENSION,
                centres=CENTRES,
                documents=chunks // 100 + 1,
                chunks=chunks,
                words=words,
                nwords=len(WORDS),
            )
        )
        loaded = time.perf_counter()
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("SET max_parallel_maintenance_workers = 2")
        conn.execute("CREATE INDEX ix_chunks_embedding_hnsw ON chunks USING hnsw (embedding vector_cosine_ops)")
        conn.execute("VACUUM ANALYZE chunks")
        indexed = time.perf_counter()
    return {"load_s": round(loaded - started, 1), "index_s": round(indexed - loaded, 1)}


def query_texts(repeat: int) -> list[str]:
    rng = random.Random(7)
    return [" ".join(rng.sample(WORDS, 3)) for _ in range(repeat)]


def recall_at_10(database_url: str, settings: OrchestratorSettings, probes: int = 20) -> float:
    """How many of the exact 10 nearest the index finds, over random stored vectors."""
    hits = 0
    with session_scope(database_url) as session:
        rows = (
            session.connection()
            .exec_driver_sql(f"SELECT embedding FROM chunks TABLESAMPLE SYSTEM (1) LIMIT {probes}")
            .all()
        )
    for (vector,) in rows:
        query = np.asarray(json.loads(vector) if isinstance(vector, str) else vector, dtype=np.float32)
        with session_scope(database_url) as session:
            approx = {(h.document_id, h.chunk_index) for h in search(session, query, 10, ef_search=settings.search_ef)}
            session.connection().exec_driver_sql("SET LOCAL enable_indexscan = off")
            exact = {(h.document_id, h.chunk_index) for h in search(session, query, 10, ef_search=settings.search_ef)}
        hits += len(approx & exact)
    return round(hits / (10 * len(rows)), 3)


def measure(
    http: Any, database_url: str, embedder_address: str, queries: list[str], settings: OrchestratorSettings
) -> dict[str, list[float]]:
    from orchestrator.clients import CallContext, ChannelPool, EmbedderClient

    out: dict[str, list[float]] = {"gateway": [], "search": [], "embed": [], "in_process": []}
    client = EmbedderClient(ChannelPool(1 << 22).get(embedder_address))
    for text in queries[:5]:  # warm-up: connections, the index's pages
        http.post("/api/v1/search", json={"query": text, "k": 10})
    for text in queries:
        started = time.perf_counter()
        response = http.post("/api/v1/search", json={"query": text, "k": 10})
        out["gateway"].append(time.perf_counter() - started)
        took = response.json()["data"]["took"]
        out["search"].append(took["search_ms"] / 1000)
        out["embed"].append(took["embed_ms"] / 1000)
        vector = np.asarray(client.embed([text], CallContext(timeout=30)).vectors[0].values, dtype=np.float32)
        started = time.perf_counter()
        with session_scope(database_url) as session:
            search(session, vector, 10, ef_search=settings.search_ef)
        out["in_process"].append(time.perf_counter() - started)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.search", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chunks", default="100000,1000000", help="chunk counts (comma separated)")
    parser.add_argument("--repeat", type=int, default=200, help="queries per size")
    args = parser.parse_args(argv)
    log_dir = Path(tempfile.mkdtemp(prefix="bench-search-"))
    embedder = start_service("embedder", log_dir, "--device", "cpu")
    columns = [
        "chunks",
        "gateway p50 ms",
        "gateway p95 ms",
        "search p50 ms",
        "search p95 ms",
        "in-proc p95 ms",
        "embed p50 ms",
        "recall@10",
        "index build s",
    ]
    rows: list[list[Any]] = []
    results: dict[int, Any] = {}
    try:
        for count in sorted(int(c) for c in args.chunks.split(",")):
            with scratch_database() as database_url:
                timing = fill(database_url, count)
                settings = OrchestratorSettings(database_url=database_url)
                env = {
                    "AIWORKER_DATABASE_URL": database_url,
                    "AIWORKER_EMBEDDER_ADDRESS": embedder.address,
                    "AIWORKER_BROKER_URL": "redis://127.0.0.1:6379/12",
                    "AIWORKER_LOG_FORMAT": "json",
                }
                gateway = start_gateway(
                    env, log_dir, API_KEY, name=f"bench-search-{count}", required_services="", required_queues=""
                )
                try:
                    with gateway.client() as http:
                        raw = measure(http, database_url, embedder.address, query_texts(args.repeat), settings)
                finally:
                    gateway.stop()
                recall = recall_at_10(database_url, settings)
            figures = {side: summary(values) for side, values in raw.items()}
            results[count] = {**timing, **figures, "recall_at_10": recall}
            rows.append(
                [
                    count,
                    figures["gateway"]["p50_ms"],
                    figures["gateway"]["p95_ms"],
                    figures["search"]["p50_ms"],
                    figures["search"]["p95_ms"],
                    figures["in_process"]["p95_ms"],
                    figures["embed"]["p50_ms"],
                    recall,
                    timing["index_s"],
                ]
            )
    finally:
        embedder.stop()
    at_target = results.get(TARGET_CHUNKS, {}).get("search", {}).get("p95_ms")
    met = at_target is not None and at_target <= TARGET_P95_MS
    path = report("search", columns, rows, {"results": results, "target_p95_ms": TARGET_P95_MS, "target_met": met})
    print(
        f"search p95 at {TARGET_CHUNKS} chunks: {at_target} ms (target <= {TARGET_P95_MS}) -> "
        f"{'met' if met else 'MISSED or not run'}; wrote {path}"
    )


if __name__ == "__main__":
    main()
