"""Stretches of live speech on audio time: the same stream gives the same partials and finals however TCP cut
it; partials come at whole seconds of a stretch, a pause ends it, the end of the stream ends the open one."""
from __future__ import annotations

import random

import numpy as np

from asr import audiosocket
from asr.streaming import LiveParams, StretchTracker
from tests.asr.audiosocket_streams import CITIZEN, GREETING, recorded, speech_pcm


def _pcm(name: str) -> bytes:
    return b"".join(f.payload for f in audiosocket.FrameParser().feed(recorded(name))
                    if f.kind == audiosocket.KIND_AUDIO)


def _run(pcm: bytes, seed: int, params: LiveParams | None = None) -> list[tuple[str, int, float, float, int]]:
    rng = random.Random(seed)
    tracker = StretchTracker(params or LiveParams())
    out = []
    at = 0
    while at < len(pcm):
        n = rng.randint(1, 2000)
        out.extend(tracker.feed(pcm[at:at + n]))
        at += n
    out.extend(tracker.flush())
    return [(d.kind, d.stretch, d.start, d.end, len(d.samples)) for d in out]


def test_the_recorded_caller_stream_gives_the_same_stretches_however_it_was_cut() -> None:
    pcm = _pcm(CITIZEN)
    first = _run(pcm, 0)
    assert all(_run(pcm, seed) == first for seed in range(1, 4))
    finals = [d for d in first if d[0] == "final"]
    assert finals and all(0.0 <= d[2] < d[3] <= len(pcm) / 2 / 8000 + 0.02 for d in finals)
    for kind, stretch, start, end, _n in first:
        if kind == "partial":
            assert abs((end - start) - round(end - start)) < 0.021  # a partial per whole second of the stretch
            assert stretch in {d[1] for d in finals}  # ...and every stretch partialled is finalled


def test_a_pause_ends_a_stretch_and_the_next_words_open_another() -> None:
    speech = speech_pcm("hotline_03_permit.wav")
    pause = b"\0\0" * 8000  # 1 s of silence: longer than end_silence
    dues = _run(speech + pause + speech, 7)
    finals = [d for d in dues if d[0] == "final"]
    assert [d[1] for d in finals] == list(range(1, len(finals) + 1)) and len(finals) >= 2
    gap_at = len(speech) / 2 / 8000
    assert any(d[3] <= gap_at + 1.0 for d in finals) and any(d[2] >= gap_at for d in finals)


def test_a_long_stretch_is_cut_at_max_stretch_and_silence_opens_nothing() -> None:
    speech = speech_pcm("hotline_01_leak.wav")
    dues = _run(speech, 3, LiveParams(max_stretch=4.0))
    finals = [d for d in dues if d[0] == "final"]
    assert len(finals) >= 2 and all(d[3] - d[2] <= 4.0 + 0.021 for d in finals)
    assert _run(np.zeros(8000 * 5, np.int16).tobytes(), 1) == []
    assert _run(_pcm(GREETING), 2)  # the agent greeting (AudioSocket channel) is speech too
