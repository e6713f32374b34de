"""svc-parser as users run it: the console entry point on a loopback port,
called over a real channel."""

from __future__ import annotations

import grpc
import pytest

from aiworker.parser.v1 import parser_pb2, parser_pb2_grpc
from tests.parser.pdfs import encrypted_pdf, image_only_pdf, owner_locked_pdf, sample_pdf


@pytest.fixture(scope="module")
def stub(parser_service):
    channel = grpc.insecure_channel(parser_service.address)
    yield parser_pb2_grpc.ParserStub(channel)
    channel.close()


def parse(stub, pdf: bytes, **kwargs) -> parser_pb2.ParsePdfResponse:
    return stub.ParsePdf(parser_pb2.ParsePdfRequest(pdf=pdf, **kwargs), timeout=30)


def test_text_and_metadata_of_each_page(stub):
    pdf = sample_pdf(
        [
            "Kim Minji\nBackend engineer, 5 years of Python",
            "Projects: Celery pipelines, gRPC services",
            "한국어 이력서 본문",
        ],
        title="Resume of Kim Minji",
        author="Kim Minji",
    )
    reply = parse(stub, pdf)
    assert [p.number for p in reply.pages] == [1, 2, 3]
    assert "Backend engineer, 5 years of Python" in reply.pages[0].text
    assert "gRPC services" in reply.pages[1].text
    assert reply.metadata.title == "Resume of Kim Minji"
    assert reply.metadata.author == "Kim Minji"
    assert reply.metadata.page_count == 3
    assert reply.metadata.encrypted is False
    assert reply.has_text and not reply.truncated


def test_max_pages_cuts_and_flags(stub):
    pdf = sample_pdf([f"page {i}" for i in range(1, 6)])
    reply = parse(stub, pdf, max_pages=2)
    assert [p.text for p in reply.pages] == ["page 1", "page 2"]
    assert reply.truncated and reply.metadata.page_count == 5


def test_service_page_limit_applies_without_a_request_limit(stub):
    reply = parse(stub, sample_pdf([f"p{i}" for i in range(60)]))  # the fixture's limit is 50
    assert len(reply.pages) == 50 and reply.truncated


def test_scanned_pdf_succeeds_with_empty_text_and_a_flag(stub):
    reply = parse(stub, image_only_pdf())
    assert len(reply.pages) == 1 and reply.pages[0].text == ""
    assert reply.has_text is False


def test_owner_password_only_pdf_is_parsed_and_marked_encrypted(stub):
    reply = parse(stub, owner_locked_pdf())
    assert "confidential text" in reply.pages[0].text
    assert reply.metadata.encrypted is True


GOOD = sample_pdf(["some text that makes the file a little longer " * 20] * 3)


@pytest.mark.parametrize(
    ("pdf", "message"),
    [
        (b"", "empty PDF"),
        (b"Hello, I am a text file and not a PDF at all", "not a PDF"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "not a PDF"),
        (GOOD[: len(GOOD) // 2], "truncated PDF"),
        (GOOD + b"5 0 obj\n<< /Type /Page /Parent 2 0 R", "truncated PDF"),  # an update cut off
        (b"%PDF-1.7\n1 0 obj garbage that is not a document\n%%EOF\n", "corrupt PDF"),
        (encrypted_pdf(), "password is needed"),
        (b"%PDF-1.4\n" + b"x" * (2 * 1024 * 1024 + 1) + b"\n%%EOF", "PDF too large"),
    ],
    ids=["empty", "text", "png", "truncated", "cut-off-update", "corrupt", "encrypted", "over-byte-limit"],
)
def test_bad_input_is_invalid_argument_with_a_clear_message(stub, parser_service, pdf, message):
    with pytest.raises(grpc.RpcError) as err:
        parse(stub, pdf)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in err.value.details()
    # ...and the service is still there for the next caller.
    assert parser_service.process.alive()
    assert parse(stub, sample_pdf(["next caller"])).pages[0].text == "next caller"


@pytest.mark.parametrize("padding", [b"\n" * 3, b"\0" * 4096, b" \r\n" * 2000], ids=["newlines", "nul-4k", "spaces-6k"])
def test_padding_after_the_end_marker_is_accepted(stub, padding):
    assert parse(stub, GOOD + padding).metadata.page_count == 3


def test_request_id_from_metadata_is_on_the_log_line(stub, parser_service):
    parse(stub, sample_pdf(["x"]))
    stub.ParsePdf(
        parser_pb2.ParsePdfRequest(pdf=sample_pdf(["y"])), timeout=30, metadata=(("x-request-id", "trace-me-123"),)
    )
    lines = [line for line in parser_service.process.log_path.read_text().splitlines() if "trace-me-123" in line]
    assert any('"rpc_finished"' in line and '"OK"' in line for line in lines)
