"""Graded spoken interview answers (answers.py) and their speech (speech.py)."""
