"""Writes the sample resume and document PDFs (run from the repository root:
`.venv/bin/python deploy/samples/make_documents.py`)."""

from __future__ import annotations

from pathlib import Path

from svc_parser.model import sample_pdf

HERE = Path(__file__).resolve().parent

RESUME = [
    "Kim Minji - Backend Engineer\nSeoul, Korea - minji@example.com\n\n"
    "Summary: five years building Python back ends and data pipelines.",
    "Experience\n"
    "2021-now, DataWorks: designed a document pipeline with Celery and Redis that processes ten thousand "
    "files a day; cut the failure rate from 4% to 0.3% with retries and exponential backoff; moved model "
    "inference behind gRPC services pinned to GPUs.\n"
    "2019-2021, ShopLab: built REST APIs with FastAPI and PostgreSQL; introduced structured logging.",
    "Skills\nPython, Celery, Redis, PostgreSQL, gRPC, FastAPI, Kubernetes, PyTorch model serving.\n\n"
    "Education\nB.S. Computer Science, 2019.",
]
DOCUMENT = [
    "Operations handbook: AI back end\n\n"
    "Every model runs in its own gRPC service. Celery workers call them from two queues: cpu_queue for "
    "parsing and storing, gpu_queue for embedding, generation and speech recognition.",
    "Incidents\n\nWhen a model service restarts, tasks retry with exponential backoff. A task killed "
    "with its worker returns to the queue because acknowledgements are late.",
]


def main() -> None:
    (HERE / "resume.pdf").write_bytes(sample_pdf(RESUME, title="Kim Minji - Resume", author="Kim Minji"))
    (HERE / "document.pdf").write_bytes(sample_pdf(DOCUMENT, title="Operations handbook", author="aiworker"))


if __name__ == "__main__":
    main()
