"""Task modules, one per pipeline namespace; importing this package registers
every task with the current Celery app."""

from orchestrator.tasks import ai_pipeline, document_pipeline, interview, maintenance, resume_pipeline

__all__ = ["ai_pipeline", "document_pipeline", "interview", "maintenance", "resume_pipeline"]
