"""svc-stt as users run it: the console entry point with the bundled Whisper
tiny.en, called over a real channel with speech in several containers/codecs."""

from __future__ import annotations

import concurrent.futures
import urllib.request

import grpc
import pytest

from aiworker.stt.v1 import stt_pb2
from bench.eval.audio import ENCODINGS, can_encode, reencode, silence, wav_seconds, word_error_rate

MAX_WER = 0.35  # tiny.en on espeak-ng speech measures 0.09-0.21 here, depending on the codec
DURATION_TOLERANCE_S = 0.1  # lossy encoders pad a few frames (AAC priming, MP3 delay)


def recognize(stub, audio: bytes, language: str = "", **kwargs) -> stt_pb2.RecognizeResponse:
    return stub.Recognize(stt_pb2.RecognizeRequest(audio=audio, language=language), timeout=120, **kwargs)


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_speech_in_each_format_is_transcribed(stt_stub, speech, encoding):
    reason = can_encode(encoding)
    if reason:
        pytest.skip(reason)
    audio = reencode(speech.wav, encoding)
    reply = recognize(stt_stub, audio)

    wer = word_error_rate(speech.text, reply.text)
    assert wer <= MAX_WER, f"WER {wer:.2f} for {encoding} ({speech.source}): {reply.text!r}"
    assert reply.language == "en"
    assert reply.model == "whisper-tiny.en"
    assert reply.duration_s == pytest.approx(wav_seconds(speech.wav), abs=DURATION_TOLERANCE_S)


def test_segments_are_ordered_inside_the_audio_and_make_up_the_text(stt_stub, speech):
    reply = recognize(stt_stub, speech.wav, language="en")
    segments = list(reply.segments)
    assert len(segments) >= 2, "a few sentences of speech should give more than one segment"
    for previous, current in zip(segments, segments[1:]):
        assert previous.start <= current.start and previous.end <= current.start + 0.01
    for segment in segments:
        assert 0.0 <= segment.start <= segment.end <= reply.duration_s
        assert segment.text and segment.text == segment.text.strip()
    # The speech fills the clip: the first segment starts near 0, the last ends near the end.
    assert segments[0].start < 1.0
    assert segments[-1].end > reply.duration_s - 2.0
    assert reply.text == " ".join(s.text for s in segments)


def test_the_stream_sends_each_segment_as_transcribed_then_what_recognize_returns(stt_stub, speech):
    request = stt_pb2.RecognizeRequest(audio=speech.wav, language="en")
    events = list(stt_stub.RecognizeStream(request, timeout=120))
    assert [e.WhichOneof("event") for e in events][-1] == "done"
    segments, done = [e.segment for e in events[:-1]], events[-1].done
    assert all(e.WhichOneof("event") == "segment" for e in events[:-1])
    assert len(segments) >= 2 and [s.segment for s in segments] == list(done.segments)
    assert all(s.duration_s == pytest.approx(done.duration_s) for s in segments)
    ends = [s.segment.end for s in segments]
    assert ends == sorted(ends) and ends[-1] <= done.duration_s
    unary = recognize(stt_stub, speech.wav, language="en")
    assert (done.text, list(done.segments), done.duration_s) == (unary.text, list(unary.segments), unary.duration_s)


def test_a_stream_of_silence_is_only_its_empty_result(stt_stub):
    events = list(stt_stub.RecognizeStream(stt_pb2.RecognizeRequest(audio=silence(2.0)), timeout=60))
    assert [e.WhichOneof("event") for e in events] == ["done"] and events[0].done.text == ""


def test_silence_is_a_success_with_empty_text(stt_stub):
    reply = recognize(stt_stub, silence(3.0))
    assert reply.text == ""
    assert list(reply.segments) == []
    assert reply.duration_s == pytest.approx(3.0, abs=0.01)


def test_concurrent_callers_each_get_their_own_transcript(stt_stub, speech, short_speech):
    clips = [speech.wav, silence(1.0), short_speech.wav]
    with concurrent.futures.ThreadPoolExecutor(len(clips)) as pool:
        replies = list(pool.map(lambda clip: recognize(stt_stub, clip), clips))
    assert word_error_rate(speech.text, replies[0].text) <= MAX_WER
    assert replies[1].text == ""
    assert replies[2].duration_s == pytest.approx(wav_seconds(short_speech.wav), abs=0.01)


def test_english_only_model_refuses_another_language_hint(stt_stub, stt_service, short_speech):
    with pytest.raises(grpc.RpcError) as err:
        recognize(stt_stub, short_speech.wav, language="ko")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "English-only" in err.value.details() and "'ko'" in err.value.details()
    assert recognize(stt_stub, short_speech.wav, language="en-US").language == "en"


def test_metrics_count_the_audio_transcribed(stt_stub, stt_service, short_speech):
    recognize(stt_stub, short_speech.wav)
    url = f"http://127.0.0.1:{stt_service.metrics_port}/metrics"
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    counts = [line for line in text.splitlines() if line.startswith("aiworker_stt_audio_seconds_count")]
    assert counts and float(counts[0].split()[-1]) >= 1
    assert "aiworker_stt_real_time_factor_bucket" in text
