"""Masking secrets and summarising large values before anything is stored or
logged: values under keys that look secret become "***"; long strings, vectors,
big lists and bytes become a short description (blob references stay as they are)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

MASK = "***"
DEFAULT_SECRET_KEYS = (
    "password",
    "passwd",
    "token",
    "secret",
    "api_key",
    "apikey",
    "authorization",
    "private_key",
    "access_key",
)
MAX_DEPTH = 6
VECTOR_MIN_LEN = 16  # a list of at least this many numbers is a vector: summarised, never stored
BLOB_PREFIX = "blob:"

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_WORD_SPLIT = re.compile(r"[^a-z0-9]+")


def _words(key: str) -> list[str]:
    return [w for w in _WORD_SPLIT.split(_CAMEL.sub("_", key).lower()) if w]


def _normalise(key: str) -> str:
    return "".join(_words(key))


class Masker:
    """A key is secret when some run of its words spells a secret name:
    `db_password`, `X-Api-Key`, `accessToken` and `Authorization` are;
    `max_new_tokens` and `completion_tokens` are not."""

    def __init__(self, extra_keys: Iterable[str] = (), max_chars: int = 200, max_items: int = 32) -> None:
        self.names = frozenset(_normalise(k) for k in (*DEFAULT_SECRET_KEYS, *extra_keys) if _normalise(k))
        self.max_chars = max_chars
        self.max_items = max_items

    def is_secret(self, key: Any) -> bool:
        if not isinstance(key, str):
            return False
        words = _words(key)
        for i in range(len(words)):
            joined = ""
            for word in words[i:]:
                joined += word
                if joined in self.names:
                    return True
                if len(joined) > 32:
                    break
        return False

    # -- structured values ----------------------------------------------------
    def clean(self, value: Any, depth: int = 0) -> Any:
        """A JSON-able copy of `value` with secrets masked and large parts summarised."""
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, str):
            return self.clean_str(value)
        if isinstance(value, (bytes, bytearray, memoryview)):
            return f"<{len(value)} bytes>"
        if depth >= MAX_DEPTH:
            return f"<{type(value).__name__}: nested too deep>"
        if isinstance(value, dict):
            items = list(value.items())
            out = {str(k): MASK if self.is_secret(k) else self.clean(v, depth + 1) for k, v in items[: self.max_items]}
            if len(items) > self.max_items:
                out["…"] = f"+{len(items) - self.max_items} more keys"
            return out
        if isinstance(value, (list, tuple, set, frozenset)):
            seq = list(value)
            if len(seq) >= VECTOR_MIN_LEN and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in seq):
                return f"<vector of {len(seq)} numbers>"
            out = [self.clean(v, depth + 1) for v in seq[: self.max_items]]
            if len(seq) > self.max_items:
                out.append(f"… +{len(seq) - self.max_items} more items")
            return out
        shape = getattr(value, "shape", None)  # numpy arrays and the like
        if shape is not None:
            return f"<{type(value).__name__} shape={tuple(shape)}>"
        return self.clean_str(repr(value))

    def clean_str(self, text: str) -> str:
        if text.startswith(BLOB_PREFIX) and len(text) <= 200:
            return text
        text = self.scrub(text)
        if len(text) > self.max_chars:
            return f"{text[: self.max_chars // 2]}… ({len(text)} chars)"
        return text

    # -- values kept whole (the result backend's args, kwargs and results) --------
    def mask_keys(self, value: Any, scrub_strings: bool = False) -> Any:
        """A copy of `value` with the values under secret keys masked and nothing
        else changed: no summaries, strings as they are (such values are a
        stage's input again: a retry's, a redelivery's); `scrub_strings`: every
        string scrubbed as free text too."""
        if isinstance(value, str):
            return self.scrub(value) if scrub_strings else value
        if isinstance(value, dict):
            return {k: MASK if self.is_secret(k) else self.mask_keys(v, scrub_strings) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.mask_keys(v, scrub_strings) for v in value)
        return value

    def scrub_all(self, value: Any) -> Any:
        """mask_keys, and every string scrubbed as free text (exception arguments)."""
        return self.mask_keys(value, scrub_strings=True)

    # -- free text (reprs, log lines, error messages, tracebacks) -------------
    def scrub(self, text: str) -> str:
        """Masks values written next to secret keys in reprs, JSON, and key=value text."""
        if not text or ("=" not in text and ":" not in text):
            return text
        return _PAIR.sub(self._mask_pair, text)

    def _mask_pair(self, match: re.Match) -> str:
        key = match.group("qkey") or match.group("bkey")
        if not self.is_secret(key):
            return match.group(0)
        value = match.group("value")
        quote = value[0] if value[:1] in ("'", '"') else value[:2] if value[:2] in ("b'", 'b"') else ""
        masked = f"{quote}{MASK}{quote[-1:]}" if quote else MASK
        return match.group("head") + masked


def masker_for(settings: Any) -> Masker:
    """The masker of an OrchestratorSettings: default secret keys + AIWORKER_TRACKING_MASK_KEYS."""
    extra = [k.strip() for k in settings.tracking_mask_keys.split(",") if k.strip()]
    return Masker(extra, settings.tracking_max_value_chars, settings.tracking_max_items)


# key: 'quoted' / "quoted" / bare word; separator ':' or '='; value: a quoted string
# (escapes allowed) or a run of characters up to a delimiter.
_PAIR = re.compile(
    r"""(?P<head>(?:(?P<q>['"])(?P<qkey>[^'"\n]{1,64})(?P=q)|(?P<bkey>\b[A-Za-z_][\w\-]{0,63}))\s*[:=]\s*)"""
    r"""(?P<value>b?'(?:[^'\\\n]|\\.)*'|b?"(?:[^"\\\n]|\\.)*"|(?:Bearer\s+|Basic\s+)?[^\s,;}\])'"]+)"""
)


class SecretLogFilter(logging.Filter):
    """Scrubs secrets from a log record's rendered message (Celery's own lines
    carry argument and return-value reprs)."""

    def __init__(self, masker: Masker) -> None:
        super().__init__()
        self.masker = masker

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is logged as it is
            return True
        scrubbed = self.masker.scrub(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        if record.exc_info:
            text = record.exc_text or logging.Formatter().formatException(record.exc_info)
            clean = self.masker.scrub(text)
            if clean != text:  # the traceback names a secret: log its scrubbed text instead
                record.msg, record.args = f"{record.getMessage()}\n{clean}", None
                record.exc_info, record.exc_text = None, None
        return True


# Celery loggers whose records include argument/result/exception reprs or message bodies.
CELERY_LOGGERS = (
    "celery.app.trace",
    "celery.worker.request",
    "celery.worker.strategy",
    "celery.worker.consumer.consumer",
    "celery.worker.job",
    "celery.redirected",
    "celery.task",
)


def install_log_filter(masker: Masker) -> SecretLogFilter:
    log_filter = SecretLogFilter(masker)
    for name in CELERY_LOGGERS:
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, SecretLogFilter)]:
            logger.removeFilter(old)
        logger.addFilter(log_filter)
    return log_filter
