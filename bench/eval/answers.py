"""Graded interview answers: the question asked, the candidate's resume, what the
candidate said, and a grade from 1 to 10 by the rubric below. For tests of the
interview pipeline (recognition with context, scoring); speech.py speaks them.

Rubric: four criteria, scored from the answer's text alone.

- relevance (0-3): 0 another subject, or nothing said; 1 mentions the topic but
  does not answer; 2 answers part of the question; 3 answers the question asked.
- specificity (0-3): 0 nothing concrete; 1 names a tool or technology; 2 tools and
  how they were used (a mechanism, a decision); 3 that, plus a measured number or
  outcome.
- grounding in the resume (0-2): 0 nothing from it; 1 consistent with it in
  general terms; 2 cites its own projects, tools or figures.
- coherence (0-2): 0 fragments, or too short to follow; 1 understandable but
  vague, hedging or disordered; 2 clear and well ordered.

grade = the sum, at least 1; an answer with relevance 0 grades 1 whatever else
it has (a fluent answer to another question is no answer). Bands: 8-10 strong,
5-7 average, 3-4 weak, 1-2 off-topic or nothing said.

Numbers and spelling in the answers are as tiny.en writes them (digits, US spelling), so the word
error rate counts recognition errors, not spelling choices."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rubric:
    relevance: int
    specificity: int
    grounding: int
    coherence: int

    def __post_init__(self) -> None:
        limits = {"relevance": 3, "specificity": 3, "grounding": 2, "coherence": 2}
        for name, top in limits.items():
            if not 0 <= getattr(self, name) <= top:
                raise ValueError(f"{name} is {getattr(self, name)}; the rubric scores it 0-{top}")

    @property
    def grade(self) -> int:
        if self.relevance == 0:
            return 1
        return max(1, self.relevance + self.specificity + self.grounding + self.coherence)


@dataclass(frozen=True)
class Answer:
    id: str
    question: str
    resume: str
    text: str  # what the candidate says; "" = silence
    rubric: Rubric

    @property
    def grade(self) -> int:
        return self.rubric.grade

    @property
    def band(self) -> str:
        return (
            "strong"
            if self.grade >= 8
            else "average"
            if self.grade >= 5
            else "weak"
            if self.grade >= 3
            else "off-topic"
        )


BACKEND_RESUME = (
    "Alex Kim, backend engineer, six years of Python. At Lumen Health built a document pipeline on "
    "Celery and Redis that processes 40,000 PDFs a day. Moved task tracking to PostgreSQL with "
    "pgvector for semantic search. Runs twelve services on Kubernetes that talk over gRPC, deployed "
    "with Helm; cut p99 latency from 900 to 120 milliseconds."
)
DATA_RESUME = (
    "Priya Shah, data engineer at Northwind Pay. Streams card payments through Kafka into ClickHouse "
    "and Snowflake. Writes Airflow DAGs and dbt models, and owns the Spark jobs on AWS EMR. "
    "Cut the nightly batch from five hours to forty minutes."
)
ML_RESUME = (
    "Jonas Weber, machine learning engineer. Fine-tuned Whisper and BERT with PyTorch and served them "
    "with NVIDIA Triton on A100 GPUs. Built retrieval with FAISS and FastAPI. Speaker at PyCon DE."
)

PIPELINE_Q = "Tell me about a data pipeline you built and how you made it reliable."
EMBEDDINGS_Q = "How did you store and search embeddings in your last project?"
SERVICES_Q = "How do your services talk to each other, and how do you deploy them?"
KAFKA_Q = "How do you get payment events from Kafka into your warehouse?"
SLOW_JOB_Q = "Tell me about a time you made a slow job faster."
SERVING_Q = "How did you serve your speech model in production?"
VECTOR_Q = "What is your experience with vector search?"


ANSWERS: tuple[Answer, ...] = (
    Answer(
        "backend-pipeline-strong",
        PIPELINE_Q,
        BACKEND_RESUME,
        "At Lumen Health I built a document pipeline with Celery and Redis that processes about 40,000 PDFs "
        "a day. Each stage is its own Celery task with retries, so a worker that crashes never loses a "
        "document. Every task is recorded in PostgreSQL, and the failure rate fell from 3% to almost nothing.",
        Rubric(3, 3, 2, 2),
    ),
    Answer(
        "backend-embeddings-strong",
        EMBEDDINGS_Q,
        BACKEND_RESUME,
        "We kept the embeddings in PostgreSQL with the pgvector extension, right next to the documents, so "
        "one transaction writes both. I added an HNSW index with cosine distance, and the search became fast "
        "enough for the product.",
        Rubric(3, 2, 2, 2),
    ),
    Answer(
        "backend-services-strong",
        SERVICES_Q,
        BACKEND_RESUME,
        "Our 12 services talk to each other over gRPC, with a deadline on every call. We deploy them on "
        "Kubernetes with Helm, and KEDA scales the workers on the length of the Redis queue. That cut our "
        "latency from 900 to 120 milliseconds.",
        Rubric(3, 3, 2, 2),
    ),
    Answer(
        "backend-pipeline-average",
        PIPELINE_Q,
        BACKEND_RESUME,
        "I built a pipeline with Celery and Redis. It had a few stages, and when something failed we tried "
        "it again. It worked well and the team was happy with it.",
        Rubric(3, 1, 1, 2),
    ),
    Answer(
        "backend-embeddings-average",
        EMBEDDINGS_Q,
        BACKEND_RESUME,
        "We used a database for the embeddings, I think it was PostgreSQL with some plugin. The search was okay.",
        Rubric(2, 1, 1, 1),
    ),
    Answer(
        "backend-services-weak",
        SERVICES_Q,
        BACKEND_RESUME,
        "We used microservices and some cloud things. They talked over the network, and the deployment was "
        "done by another team, so I am not really sure about the details.",
        Rubric(2, 0, 0, 1),
    ),
    Answer("backend-services-very-short", SERVICES_Q, BACKEND_RESUME, "Kubernetes and gRPC.", Rubric(2, 1, 1, 0)),
    Answer(
        "backend-embeddings-off-topic",
        EMBEDDINGS_Q,
        BACKEND_RESUME,
        "The weather has been lovely this week. On Saturday I went hiking with my sister, and the view from "
        "the top of the hill was beautiful.",
        Rubric(0, 0, 0, 2),
    ),
    Answer("backend-pipeline-silent", PIPELINE_Q, BACKEND_RESUME, "", Rubric(0, 0, 0, 0)),
    Answer(
        "data-kafka-strong",
        KAFKA_Q,
        DATA_RESUME,
        "We run Kafka Connect with the ClickHouse sink, and a Flink job drops duplicate payment events by "
        "their idempotency key. Every hour Airflow loads the clean tables into Snowflake, and dbt tests "
        "check the row counts before anyone reads them.",
        Rubric(3, 2, 2, 2),
    ),
    Answer(
        "data-slow-job-strong",
        SLOW_JOB_Q,
        DATA_RESUME,
        "The nightly Spark batch on EMR took five hours. I found one join that shuffled the whole payments "
        "table, so I partitioned it by date and broadcast the small merchants table. Now the batch finishes "
        "in 40 minutes.",
        Rubric(3, 3, 2, 2),
    ),
    Answer(
        "data-kafka-average",
        KAFKA_Q,
        DATA_RESUME,
        "We use Kafka, and then the data goes into the warehouse. Some jobs move it every hour, and we check "
        "that it looks right.",
        Rubric(3, 1, 1, 1),
    ),
    Answer(
        "data-slow-job-weak",
        SLOW_JOB_Q,
        DATA_RESUME,
        "I always try to make things faster. Performance is very important to me, and I like to find the "
        "problem and fix it quickly.",
        Rubric(1, 0, 0, 2),
    ),
    Answer(
        "data-kafka-off-topic",
        KAFKA_Q,
        DATA_RESUME,
        "I think football is the best sport. My favorite team won the league last year, and I watched every "
        "match with my friends.",
        Rubric(0, 0, 0, 2),
    ),
    Answer(
        "ml-serving-strong",
        SERVING_Q,
        ML_RESUME,
        "I fine-tuned Whisper with PyTorch and exported it to TensorRT. We served it with NVIDIA Triton on "
        "two A100 GPUs with dynamic batching, and it handled 300 requests a second at about 80 milliseconds "
        "each.",
        Rubric(3, 3, 2, 2),
    ),
    Answer(
        "ml-vector-strong",
        VECTOR_Q,
        ML_RESUME,
        "I built retrieval with FAISS behind FastAPI. We used an IVF index over 10 million passages and tuned "
        "the number of probes until the recall was good enough, and queries stayed under 10 milliseconds.",
        Rubric(3, 3, 2, 2),
    ),
    Answer(
        "ml-vector-average",
        VECTOR_Q,
        ML_RESUME,
        "I have used FAISS a little. You put the vectors in an index and then you can search it, and it was "
        "quite fast, but I did not measure it.",
        Rubric(2, 1, 1, 2),
    ),
    Answer(
        "ml-serving-weak",
        SERVING_Q,
        ML_RESUME,
        "Well, the model, we had it on some server, I think with a GPU, and it answered things. Sometimes "
        "slow. It mostly worked, I guess.",
        Rubric(2, 0, 1, 1),
    ),
    Answer(
        "ml-vector-off-topic",
        VECTOR_Q,
        ML_RESUME,
        "I am a very hard worker and a good team player. My friends say that I am always on time.",
        Rubric(0, 0, 0, 2),
    ),
)

# Written and graded after the scorer's weights were set (orchestrator/domain/scoring.py), and not used to
# tune them: the held-out check of how the score generalises (tests/interview/test_scoring.py).
ROLLOUT_Q = "How do you roll out a change without downtime?"
MONITOR_Q = "How do you find out when a data pipeline breaks?"
TRAINING_Q = "How did you fine-tune your speech model?"

HELD_OUT: tuple[Answer, ...] = (
    Answer(
        "backend-rollout-strong",
        ROLLOUT_Q,
        BACKEND_RESUME,
        "We deploy with Helm on Kubernetes using rolling updates. Each of the 12 services has a readiness "
        "probe, so a new pod gets traffic only once its gRPC health check answers. We watch the p99 latency "
        "during the rollout and roll back automatically if it climbs above 200 milliseconds.",
        Rubric(3, 3, 2, 2),
    ),
    Answer(
        "backend-rollout-average",
        ROLLOUT_Q,
        BACKEND_RESUME,
        "We use Kubernetes, so the deployments are mostly fine. If something goes wrong we go back to the old version.",
        Rubric(2, 1, 1, 1),
    ),
    Answer(
        "data-monitor-strong",
        MONITOR_Q,
        DATA_RESUME,
        "Every Airflow DAG ends with dbt tests on row counts and freshness, and a failed test pages the "
        "engineer on call. On the Kafka side we alert when consumer lag passes 10,000 messages, which caught "
        "a stuck ClickHouse sink twice last quarter.",
        Rubric(3, 3, 2, 2),
    ),
    Answer(
        "data-monitor-weak",
        MONITOR_Q,
        DATA_RESUME,
        "Usually someone notices that the numbers look strange, and then we look at it. We try to be careful.",
        Rubric(1, 0, 0, 1),
    ),
    Answer(
        "data-monitor-off-topic",
        MONITOR_Q,
        DATA_RESUME,
        "My last holiday was in Portugal. We ate a lot of fish and walked along the coast every evening.",
        Rubric(0, 0, 0, 2),
    ),
    Answer(
        "ml-training-strong",
        TRAINING_Q,
        ML_RESUME,
        "I fine-tuned Whisper small on 400 hours of call center audio with PyTorch, in mixed precision on "
        "four A100 GPUs. I froze the encoder for the first epoch, and the word error rate dropped from 18% "
        "to 11%.",
        Rubric(3, 3, 2, 2),
    ),
    Answer(
        "ml-training-average",
        TRAINING_Q,
        ML_RESUME,
        "I fine-tuned Whisper with PyTorch on our own recordings. It took a few days on the GPUs and it got "
        "better on our data.",
        Rubric(3, 1, 2, 2),
    ),
    Answer("ml-training-very-short", TRAINING_Q, ML_RESUME, "Whisper. PyTorch.", Rubric(1, 1, 1, 0)),
)
TUNED = ANSWERS  # the answers the weights were set on
ANSWERS = TUNED + HELD_OUT

BY_ID = {answer.id: answer for answer in ANSWERS}
SPOKEN = tuple(answer for answer in ANSWERS if answer.text)  # those a word error rate is defined for
