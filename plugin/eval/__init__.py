"""Evaluation: topics/qrels readers, runs and metrics, the relevance filter's evaluation and fitting, fusion tuning."""
