"""Task modules, one per pipeline namespace. Each declares its tasks with
orchestrator.declarations; the pipeline registry (orchestrator/pipelines.py)
imports the pipelines' modules, the app this package's maintenance module."""
