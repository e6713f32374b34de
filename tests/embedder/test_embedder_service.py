"""svc-embedder as users run it: the console entry point with the bundled model,
called over a real channel, compared with the same model run in-process."""

from __future__ import annotations

import threading

import grpc
import numpy as np
import pytest

from tests.embedder.conftest import MAX_TEXT_CHARS, MAX_TEXTS_PER_CALL
from tests.embedder.support import assert_close, batch_size_histogram, embed, vectors

TEXTS = [
    "Kim Minji is a backend engineer with five years of Python.",
    "She built Celery pipelines that call gRPC model services.",
    "Tell me about a time you had to debug a production incident.",
    "한국어 이력서 본문도 임베딩됩니다.",
    "short",
    "A somewhat longer sentence about distributed task queues, retries, acknowledgements, "
    "visibility timeouts and what happens to a task when the worker that held it is killed.",
]


@pytest.mark.parametrize("normalize", [False, True], ids=["raw", "normalized"])
def test_vectors_equal_the_in_process_model(embedder_stub, reference_model, normalize):
    reply = embed(embedder_stub, TEXTS, normalize=normalize)
    want = reference_model.encode(TEXTS, normalize_embeddings=normalize)
    assert_close(vectors(reply), want)
    assert reply.dimension == 384 == want.shape[1]
    assert reply.model == "sentence-transformers/all-MiniLM-L6-v2"
    assert reply.max_tokens == 256
    assert list(reply.truncated) == []
    if normalize:
        assert np.allclose(np.linalg.norm(vectors(reply), axis=1), 1.0, atol=1e-5)


def test_one_text_alone_equals_the_same_text_in_a_list(embedder_stub):
    together = vectors(embed(embedder_stub, TEXTS))
    alone = np.stack([vectors(embed(embedder_stub, [text]))[0] for text in TEXTS])
    assert_close(alone, together)


def test_long_text_is_embedded_and_its_index_flagged_truncated(embedder_stub, reference_model):
    long_text = "The candidate described the incident in great detail. " * 60  # ~600 tokens
    texts = ["short one", long_text, "another short one"]
    reply = embed(embedder_stub, texts, normalize=True)
    assert list(reply.truncated) == [1]
    assert reply.max_tokens == 256
    # The model embedded the first 256 tokens, exactly as in-process.
    assert_close(vectors(reply), reference_model.encode(texts, normalize_embeddings=True))


def test_truncation_flag_is_exact_at_the_token_window(embedder_stub, reference_model):
    # "word" is one token; [CLS] and [SEP] make 2 more: 254 words fill the 256-token window.
    fits, over = "word " * 254, "word " * 255
    assert len(reference_model.tokenizer(fits)["input_ids"]) == 256
    reply = embed(embedder_stub, [fits, over])
    assert list(reply.truncated) == [1]


def test_concurrent_callers_get_their_own_vectors_and_share_batches(embedder_stub, embedder_service, reference_model):
    threads, rounds = 16, 4
    texts = {
        (t, r): f"caller {t} asks question {r}: how would you shard queue {t * rounds + r}?"
        for t in range(threads)
        for r in range(rounds)
    }
    want = dict(zip(texts, reference_model.encode(list(texts.values()))))
    got: dict[tuple[int, int], np.ndarray] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(threads)
    before = batch_size_histogram(embedder_service.metrics_port)

    def caller(t: int) -> None:
        try:
            start.wait(10)
            for r in range(rounds):
                # Half the callers want normalised vectors: they still share batches.
                reply = embed(embedder_stub, [texts[t, r]], normalize=t % 2 == 0)
                got[t, r] = vectors(reply)[0]
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=caller, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert not errors, errors
    assert got.keys() == texts.keys()
    for key, vector in got.items():
        assert_close(vector[None, :], want[key][None, :])

    after = batch_size_histogram(embedder_service.metrics_port)
    batches = after["count"] - before["count"]
    batched_texts = after["sum"] - before["sum"]
    multi_text_batches = batches - (after["le_1"] - before["le_1"])
    assert batched_texts == threads * rounds  # every text went through the batcher once
    # Every call carried one text, so a batch of more than one joined several callers.
    assert multi_text_batches >= 1, after
    assert batched_texts / batches > 1, f"{batches:.0f} batches for {batched_texts:.0f} texts"


LONG = "x" * (MAX_TEXT_CHARS + 1)


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        ([], "no texts: the request's texts list is empty"),
        (["fine", ""], "texts[1] is empty"),
        (["fine", "also fine", " \n\t "], "texts[2] is whitespace only"),
        (
            ["ok"] * (MAX_TEXTS_PER_CALL + 1),
            f"too many texts: {MAX_TEXTS_PER_CALL + 1} in one call, the limit is {MAX_TEXTS_PER_CALL}",
        ),
        (["ok", LONG], f"texts[1] is too long: {MAX_TEXT_CHARS + 1} characters, the limit is {MAX_TEXT_CHARS}"),
    ],
    ids=["empty-list", "empty-text", "whitespace-only", "too-many-texts", "too-many-chars"],
)
def test_bad_input_is_invalid_argument_with_a_clear_message(embedder_stub, embedder_service, texts, message):
    with pytest.raises(grpc.RpcError) as err:
        embed(embedder_stub, texts)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in err.value.details()
    # ...and the service is still there for the next caller.
    assert embedder_service.process.alive()
    assert len(embed(embedder_stub, ["next caller"]).vectors) == 1


def test_request_id_from_metadata_is_on_the_log_line(embedder_stub, embedder_service):
    embed(embedder_stub, ["trace me"], metadata=(("x-request-id", "embed-trace-7"),))
    lines = [line for line in embedder_service.process.log_path.read_text().splitlines() if "embed-trace-7" in line]
    assert any('"rpc_finished"' in line and '"OK"' in line for line in lines)
