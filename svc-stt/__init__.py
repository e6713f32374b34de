"""svc-stt: audio → transcript with timed segments (faster-whisper), GPU with CPU fallback."""
