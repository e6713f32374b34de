"""Maps aiworker.parser.v1 ↔ PdfParser."""

from __future__ import annotations

import asyncio

import grpc

from aiworker.parser.v1 import parser_pb2, parser_pb2_grpc
from svc_parser.model import PdfParser, sample_pdf
from svc_parser.settings import ParserSettings
from svc_runtime.device import resolve_device
from svc_runtime.server import ServicerBase


class ParserServicer(ServicerBase, parser_pb2_grpc.ParserServicer):
    service_name = parser_pb2.DESCRIPTOR.services_by_name["Parser"].full_name

    def __init__(self, settings: ParserSettings) -> None:
        self.device = resolve_device(settings.device, cuda_capable=False)
        self.parser = PdfParser(settings.max_pdf_bytes, settings.max_pages)

    def register(self, server: grpc.aio.Server) -> None:
        parser_pb2_grpc.add_ParserServicer_to_server(self, server)

    async def startup(self) -> None:
        warm = sample_pdf(["warm-up"])
        await asyncio.to_thread(self.parser.parse, warm)

    async def ParsePdf(self, request: parser_pb2.ParsePdfRequest, context: grpc.aio.ServicerContext):
        max_pages = request.max_pages if request.HasField("max_pages") else None
        parsed = await asyncio.to_thread(self.parser.parse, request.pdf, max_pages)
        return parser_pb2.ParsePdfResponse(
            pages=[parser_pb2.Page(number=n, text=t) for n, t in parsed.pages],
            metadata=parser_pb2.PdfMetadata(
                title=parsed.title,
                author=parsed.author,
                page_count=parsed.page_count,
                encrypted=parsed.encrypted,
            ),
            has_text=parsed.has_text,
            truncated=parsed.truncated,
        )
