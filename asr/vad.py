"""Voice-activity detection: find the stretches worth decoding, skip long silences (pauses, dead air).

Pure apart from the webrtcvad call, which is a deterministic function of the samples. Cuts are
deliberately conservative (only silences longer than ``min_silence`` are dropped, and every kept
stretch keeps ``pad`` of context on both sides) so that recognition accuracy does not suffer: a word
clipped at its edge costs more than a second of silence decoded.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SUPPORTED_RATES = (8000, 16000, 32000, 48000)


@dataclass(frozen=True)
class VadParams:
    mode: int = 2  # webrtcvad aggressiveness 0..3
    frame_ms: int = 30  # 10, 20 or 30
    pad: float = 0.5  # seconds of context kept before and after speech
    # Only silences at least this long are skipped: hold, dead air, a caller fetching a document. Normal
    # pauses between sentences stay, because each cut ends a Vosk utterance (a FinalResult costs time,
    # and the language model loses the sentence's context), measured in benchmarks/asr_throughput.py.
    min_silence: float = 2.0
    # When speech covers at least this share of the audio, decode it whole: cutting saves nothing.
    min_saving: float = 0.1
    min_speech: float = 0.09  # shorter voiced blips (clicks) do not open a region on their own


def voiced_flags(samples: np.ndarray, rate: int, params: VadParams = VadParams()) -> list[bool]:
    import webrtcvad

    vad = webrtcvad.Vad(params.mode)
    step = rate * params.frame_ms // 1000
    raw = samples.astype(np.int16).tobytes()
    n = len(samples) // step
    return [vad.is_speech(raw[i * step * 2:(i + 1) * step * 2], rate) for i in range(n)]


def regions_from_flags(flags: list[bool], frame_seconds: float, total_seconds: float,
                       params: VadParams = VadParams()) -> list[tuple[float, float]]:
    """Voiced frames -> (start, end) seconds, merged across short gaps, padded, clamped, sorted."""
    runs: list[list[float]] = []
    start: int | None = None
    for i, voiced in enumerate([*flags, False]):
        if voiced and start is None:
            start = i
        elif not voiced and start is not None:
            if (i - start) * frame_seconds >= params.min_speech:
                runs.append([start * frame_seconds, i * frame_seconds])
            start = None
    merged: list[list[float]] = []
    for s, e in runs:
        s, e = max(0.0, s - params.pad), min(total_seconds, e + params.pad)
        if merged and s - merged[-1][1] < params.min_silence:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    if merged and sum(e - s for s, e in merged) > (1 - params.min_saving) * total_seconds:
        return [(0.0, round(total_seconds, 3))]
    return [(round(s, 3), round(e, 3)) for s, e in merged]


def voiced_regions(samples: np.ndarray, rate: int, params: VadParams = VadParams()) -> list[tuple[float, float]]:
    """Stretches of speech in seconds; the whole clip when the rate is one webrtcvad cannot take."""
    total = len(samples) / rate
    if rate not in SUPPORTED_RATES or total == 0:
        return [(0.0, total)] if total else []
    flags = voiced_flags(samples, rate, params)
    return regions_from_flags(flags, params.frame_ms / 1000, total, params)
