"""The shared runtime over a real loopback channel, in-process: readiness,
drain, the error table, request ids, reflection and metrics."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from aiworker.parser.v1 import parser_pb2, parser_pb2_grpc
from svc_parser.model import sample_pdf
from svc_parser.servicer import ParserServicer
from svc_parser.settings import ParserSettings
from svc_runtime.errors import InvalidArgument
from svc_runtime.interceptor import grpc_code
from svc_runtime.logs import configure_logging
from svc_runtime.server import create_server

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
PARSER = "aiworker.parser.v1.Parser"


class FaultyParser(ParserServicer):
    """A parser whose handler fails the way a servicer bug or a domain error would."""

    async def ParsePdf(self, request, context):
        if request.pdf == b"domain":
            raise InvalidArgument("a clear message for the caller")
        raise KeyError("secret internal detail")


def settings(**overrides) -> ParserSettings:
    return ParserSettings(port=0, metrics_port=0, log_format="json", **overrides)


async def check(channel: grpc.aio.Channel, service: str) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return (await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)).status


def test_health_not_serving_until_loaded_then_serving_then_draining():
    async def scenario():
        server, port = create_server(settings(drain_seconds=1.0, grace_seconds=1.0), ParserServicer(settings()))
        assert port > 0
        await server.start()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            assert await check(channel, "") == SERVING
            assert await check(channel, PARSER) == NOT_SERVING
            call = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))
            await call
            assert ("x-aiworker-device", "cpu") in tuple(await call.trailing_metadata())
            await server.load_model()
            assert await check(channel, PARSER) == SERVING
            stopping = asyncio.create_task(server.stop())
            await asyncio.sleep(0.3)
            # Draining: still answering, but every name says NOT_SERVING.
            assert await check(channel, PARSER) == NOT_SERVING
            assert await check(channel, "") == NOT_SERVING
            parsed = await parser_pb2_grpc.ParserStub(channel).ParsePdf(
                parser_pb2.ParsePdfRequest(pdf=sample_pdf(["still served while draining"])), timeout=5
            )
            assert "draining" in parsed.pages[0].text
            await stopping

    asyncio.run(scenario())


def test_error_table_maps_domain_errors_and_hides_internal_ones(capfd):
    configure_logging("info", "json")

    async def scenario():
        server, port = create_server(settings(), FaultyParser(settings()))
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = parser_pb2_grpc.ParserStub(channel)
                with pytest.raises(grpc.aio.AioRpcError) as domain:
                    await stub.ParsePdf(parser_pb2.ParsePdfRequest(pdf=b"domain"), timeout=5)
                assert domain.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert domain.value.details() == "a clear message for the caller"
                with pytest.raises(grpc.aio.AioRpcError) as internal:
                    await stub.ParsePdf(
                        parser_pb2.ParsePdfRequest(pdf=b"x"), timeout=5, metadata=(("x-request-id", "req-42"),)
                    )
                assert internal.value.code() == grpc.StatusCode.INTERNAL
                assert "secret internal detail" not in internal.value.details()
                assert "req-42" in internal.value.details()
                # The interceptor counts a call once its status is sent, so the count may follow the reply.
                deadline = time.monotonic() + 5
                while True:
                    metrics = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics").read().decode()
                    if ('code="INVALID_ARGUMENT"' in metrics and 'code="INTERNAL"' in metrics) or (
                        time.monotonic() > deadline
                    ):
                        break
                    await asyncio.sleep(0.05)
                assert 'code="INVALID_ARGUMENT"' in metrics and 'code="INTERNAL"' in metrics
                assert "aiworker_grpc_latency_seconds_bucket" in metrics
                assert "aiworker_grpc_in_flight" in metrics
        finally:
            await server.stop()

    asyncio.run(scenario())
    err = capfd.readouterr().err
    # The traceback is logged, with the caller's request id bound to the line.
    internal_lines = [line for line in err.splitlines() if "rpc_internal_error" in line]
    assert internal_lines and "req-42" in internal_lines[0] and "KeyError" in internal_lines[0]


def test_reflection_lists_the_services():
    async def scenario():
        server, port = create_server(settings(), ParserServicer(settings()))
        await server.start()
        try:
            channel = grpc.insecure_channel(f"127.0.0.1:{port}")
            services = await asyncio.to_thread(lambda: ProtoReflectionDescriptorDatabase(channel).get_services())
            channel.close()
            assert {PARSER, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= set(services)
        finally:
            await server.stop()

    asyncio.run(scenario())


def test_oversize_message_is_resource_exhausted():
    async def scenario():
        limited = settings(max_message_bytes=1024 * 1024)
        server, port = create_server(limited, ParserServicer(limited))
        await server.start()
        await server.load_model()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await parser_pb2_grpc.ParserStub(channel).ParsePdf(
                        parser_pb2.ParsePdfRequest(pdf=b"%PDF-" + b"0" * (2 * 1024 * 1024)), timeout=10
                    )
                assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        finally:
            await server.stop()

    asyncio.run(scenario())


class EveryErrorParser(ParserServicer):
    """Raises the domain error named by the request's bytes."""

    async def ParsePdf(self, request, context):
        from svc_runtime import errors

        raise getattr(errors, request.pdf.decode())(f"{request.pdf.decode()} says why")


async def failed_call(servicer: ParserServicer, pdf: bytes) -> grpc.aio.AioRpcError:
    """The error of one ParsePdf call to `servicer` on a server of its own."""
    server, port = create_server(settings(), servicer)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await parser_pb2_grpc.ParserStub(channel).ParsePdf(parser_pb2.ParsePdfRequest(pdf=pdf), timeout=5)
            return failed.value
    finally:
        await server.stop()


@pytest.mark.parametrize(
    ("error", "code"),
    [
        ("InvalidArgument", grpc.StatusCode.INVALID_ARGUMENT),
        ("NotFound", grpc.StatusCode.NOT_FOUND),
        ("ResourceExhausted", grpc.StatusCode.RESOURCE_EXHAUSTED),
        ("Unavailable", grpc.StatusCode.UNAVAILABLE),
        ("DeadlineExceeded", grpc.StatusCode.DEADLINE_EXCEEDED),
        ("FailedPrecondition", grpc.StatusCode.FAILED_PRECONDITION),
    ],
)
def test_every_domain_error_has_its_code_and_message(error, code):
    failed = asyncio.run(failed_call(EveryErrorParser(settings()), error.encode()))
    assert failed.code() == code
    assert failed.details() == f"{error} says why"


def test_every_domain_error_names_a_grpc_status():
    """Their codes are plain strings (the engines import no grpc): each must name a real status."""
    from svc_runtime import errors

    found, pending = set(), [errors.ServiceError]
    while pending:
        cls = pending.pop()
        found.add(cls)
        pending.extend(cls.__subclasses__())
    assert {errors.TooLarge, errors.MalformedRequest, errors.Gone, errors.FailedPrecondition} <= found
    for cls in found:
        assert grpc_code(cls("why")).name == cls.code
    assert grpc_code(errors.Gone("expired")) is grpc.StatusCode.NOT_FOUND and errors.Gone.http_status == 410


def test_a_request_id_is_generated_when_none_comes(capfd):
    configure_logging("info", "json")
    details = asyncio.run(failed_call(FaultyParser(settings()), b"x")).details()
    lines = [json.loads(line) for line in capfd.readouterr().err.splitlines() if "rpc_internal_error" in line]
    request_id = lines[0]["request_id"]
    assert len(request_id) >= 16 and request_id in details  # the caller can quote it to an operator
