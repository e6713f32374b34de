"""Evaluations (`make eval`) and the data they share with the tests: graded interview answers, speech."""
