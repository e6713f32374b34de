"""Secrets masked and large values summarised, in values and in free text."""

from __future__ import annotations

import logging

from orchestrator.masking import MASK, Masker, SecretLogFilter

SECRET = "hunter2-xyz"


def test_secret_looking_keys_are_masked_at_any_depth():
    masker = Masker(extra_keys=["session_cookie"])
    value = {
        "password": SECRET,
        "options": {"api_key": SECRET, "max_new_tokens": 64},
        "headers": [{"Authorization": f"Bearer {SECRET}"}],
        "accessToken": SECRET,
        "client_secret": SECRET,
        "session_cookie": SECRET,
        "completion_tokens": 12,
        "author": "Kim",
    }
    cleaned = masker.clean(value)
    assert SECRET not in repr(cleaned)
    assert cleaned["options"] == {"api_key": MASK, "max_new_tokens": 64}
    assert cleaned["completion_tokens"] == 12 and cleaned["author"] == "Kim"


def test_large_values_become_summaries_and_blob_references_stay():
    masker = Masker(max_chars=50, max_items=6)
    ref = "blob:sha256:" + "a" * 64
    cleaned = masker.clean(
        {
            "vector": [0.1] * 384,
            "text": "x" * 1000,
            "ref": ref,
            "raw": b"\x00" * 10,
            "many": ["a"] * 9,
            "wide": {str(i): i for i in range(9)},
        }
    )
    assert cleaned["vector"] == "<vector of 384 numbers>"
    assert cleaned["text"].endswith("(1000 chars)") and len(cleaned["text"]) < 60
    assert cleaned["ref"] == ref and cleaned["raw"] == "<10 bytes>"
    assert cleaned["many"][-1] == "… +3 more items" and len(cleaned["many"]) == 7
    assert len(cleaned["wide"]) == 7 and cleaned["wide"]["…"] == "+3 more keys"


def test_free_text_is_scrubbed():
    masker = Masker()
    text = (
        f"Task x succeeded: {{'password': '{SECRET}', 'n': 5, \"api_key\": \"{SECRET}\"}} "
        f"password={SECRET} token: {SECRET} Authorization: Bearer {SECRET} max_new_tokens=5"
    )
    scrubbed = masker.scrub(text)
    assert SECRET not in scrubbed
    assert "'n': 5" in scrubbed and "max_new_tokens=5" in scrubbed


def test_log_filter_scrubs_messages_and_tracebacks():
    masker = Masker()
    log_filter = SecretLogFilter(masker)
    try:
        raise ValueError(f"login refused, password={SECRET}")
    except ValueError:
        import sys

        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "celery.app.trace",
        logging.ERROR,
        __file__,
        1,
        "Task %(name)s raised: %(exc)s",
        ({"name": "probe.fail", "exc": f"ValueError('password={SECRET}')"},),
        exc_info,
    )
    assert log_filter.filter(record)
    rendered = logging.Formatter().format(record)
    assert SECRET not in rendered and "probe.fail" in rendered and "ValueError" in rendered


def test_mask_keys_masks_secrets_and_keeps_everything_else_whole():
    """What the result backend stores: a stage's input for a retry, so nothing is summarised."""
    masker = Masker(extra_keys=["session_cookie"])
    text = "x" * 1000 + " password=kept-as-text"
    value = {
        "text": text,
        "vector": [0.1] * 384,
        "options": {"api_key": SECRET, "max_new_tokens": 64},
        "items": [{"session_cookie": SECRET}, ("a", {"token": SECRET})],
        "n": 5,
    }
    masked = masker.mask_keys(value)
    assert SECRET not in repr(masked)
    assert masked["text"] == text and masked["vector"] == [0.1] * 384 and masked["n"] == 5
    assert masked["options"] == {"api_key": MASK, "max_new_tokens": 64}
    assert masked["items"] == [{"session_cookie": MASK}, ("a", {"token": MASK})]
    assert value["options"]["api_key"] == SECRET  # a copy: the task's own values are untouched
    assert masker.scrub_all(("login refused, password=" + SECRET, {"secret": SECRET})) == (
        "login refused, password=***",
        {"secret": MASK},
    )
