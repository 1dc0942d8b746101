"""Transcribing the real Mandarin set for the accuracy and draft tests, one folder per process.

The set (real/ and real_8k/, 248 s of audio) is decoded once per test session; the two folders go to
two processes so that both cores work (about 30 s instead of 60 on the CI machine). Each process loads
the recognizer the tests use: Vosk with the Chinese model when ``vosk_model`` is given, else Whisper.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any


def transcribe_folder(speech: str, folder: str, vosk_model: str | None) -> tuple[dict[str, Any], float, float]:
    from asr import audio, engine
    from asr.vad import VadParams

    backend: Any
    if vosk_model:
        backend = engine.VoskBackend(vosk_model)
    else:
        from asr.whisper import WhisperBackend

        backend = WhisperBackend()
    out: dict[str, Any] = {}
    audio_seconds = wall = 0.0
    for path in sorted((Path(speech) / folder).glob("*.wav")):
        rec = audio.read(path)
        started = time.perf_counter()
        out[f"{folder}/{path.name}"] = engine.transcribe(backend, engine.tracks_of(rec.channels, rec.sample_rate),
                                                         vad=VadParams())
        wall += time.perf_counter() - started
        audio_seconds += rec.duration
    return out, audio_seconds, wall
