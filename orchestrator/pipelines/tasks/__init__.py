"""Task modules, one per pipeline namespace. Each declares its tasks with
orchestrator.pipelines.declarations; the pipeline registry (orchestrator/pipelines/registry.py)
imports the pipelines' modules, the app this package's maintenance module."""
