"""Audio bytes → 16 kHz mono float32 samples with PyAV, within byte and duration
limits. Knows nothing of gRPC: raises InvalidArgument saying what is wrong."""

from __future__ import annotations

import gc
import io
import logging
import wave

import av
import numpy as np

from svc_runtime.errors import InvalidArgument

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000  # what Whisper's feature extractor expects


def check_size(data: bytes, max_bytes: int) -> None:
    if not data:
        raise InvalidArgument("empty audio: the request carried no bytes")
    if len(data) > max_bytes:
        raise InvalidArgument(f"audio too large: {len(data)} bytes, the limit is {max_bytes} bytes")


def decode_audio(data: bytes, max_bytes: int, max_seconds: float) -> np.ndarray:
    """Decodes any container/codec FFmpeg knows into 16 kHz mono float32.

    Resamples through s16 as faster_whisper.decode_audio does, so a transcript
    equals the in-process one for the same file. Stops decoding as soon as the
    audio runs over `max_seconds` (no hour-long file is held in memory)."""
    check_size(data, max_bytes)
    try:
        container = av.open(io.BytesIO(data), mode="r", metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise InvalidArgument(f"not audio: FFmpeg recognizes no audio format in it ({_reason(exc)})") from exc
    try:
        with container:
            if not container.streams.audio:
                kinds = sorted({s.type for s in container.streams}) or ["none"]
                raise InvalidArgument(
                    f"not audio: the {container.format.name} file has no audio stream (streams: {', '.join(kinds)})"
                )
            declared = container.duration / av.time_base if container.duration else None
            samples, skipped = _decode_first_audio_stream(container, max_seconds, declared)
    except av.FFmpegError as exc:
        raise InvalidArgument(
            f"corrupt audio: decoding the {container.format.name} file failed ({_reason(exc)})"
        ) from exc
    finally:
        # PyAV's resampler graph is freed only by the cycle collector (faster-whisper #390).
        gc.collect()
    if skipped:
        log.warning("audio_frames_skipped", extra={"frames": skipped})
    if samples.size == 0:
        detail = f" ({skipped} corrupt frames skipped)" if skipped else ""
        raise InvalidArgument(f"zero-length audio: the file holds no audio samples{detail}")
    return samples.astype(np.float32) / 32768.0


def _decode_first_audio_stream(
    container: av.container.InputContainer, max_seconds: float, declared: float | None
) -> tuple[np.ndarray, int]:
    """s16 samples at 16 kHz and the number of corrupt packets skipped (as FFmpeg's
    own tools do: a damaged frame mid-file should not lose the whole answer)."""
    max_samples = int(max_seconds * SAMPLE_RATE)
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    total = skipped = 0

    def take(frames: list[av.AudioFrame]) -> None:
        nonlocal total
        for frame in frames:
            chunks.append(frame.to_ndarray().reshape(-1))
            total += chunks[-1].size
        if total > max_samples:
            if declared and declared > max_seconds:
                raise InvalidArgument(f"audio too long: {declared:.1f} s, the limit is {max_seconds:g} s")
            raise InvalidArgument(f"audio too long: it runs past the limit of {max_seconds:g} s")

    for packet in container.demux(container.streams.audio[0]):
        try:
            decoded = packet.decode()
        except av.InvalidDataError:
            skipped += 1
            continue
        for frame in decoded:
            take(resampler.resample(frame))
    take(resampler.resample(None))
    samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
    return samples, skipped


def _reason(exc: av.FFmpegError) -> str:
    """FFmpeg's message without the '<none>' file name PyAV appends for streams."""
    return exc.strerror or str(exc)


def wav_bytes(samples: np.ndarray, rate: int = SAMPLE_RATE) -> bytes:
    """16-bit mono WAV of float samples in [-1, 1] (warm-up, tests)."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()
