"""Pure logic the stages use, with no Celery, Redis or gRPC in it: scoring and
evaluating interview answers, follow-up checks, the speech context of an
answer, distinctive terms, text chunking, document Q&A prompts."""
