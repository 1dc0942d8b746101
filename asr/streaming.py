"""Live recognition of one call leg while it is spoken: stretches of speech, partial text, finals.

The core is ``StretchTracker`` (pure apart from webrtcvad, a deterministic function of the samples): it
takes 8 kHz audio as it arrives and says when a stretch of speech opens, when a partial is due (every
``partial_every`` seconds of audio inside a stretch) and when the stretch is final (a pause of
``end_silence``, or ``max_stretch`` reached). Time is the audio's own (samples received), never the clock,
so a replayed stream gives the same stretches every time.

Decoders turn a stretch into text:
- Whisper re-decodes the current stretch (a sliding window of its last ``window`` seconds) for each partial,
  quickly (``WhisperBackend.partial_text``: the encoder over the window plus 2 s, no word times), and
  the whole stretch for the final as after the call (a 30 s window, word times). Partials are
  coalesced: a leg never has more than one decode waiting;
- Vosk streams natively: each piece of audio is fed once to the leg's own recognizer (the model is shared),
  ``PartialResult()`` is the partial and ``FinalResult()`` ends the stretch.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from asr import engine
from asr.engine import Word

RATE = 8000
SPEAKER_LABELS = {"caller": "市民", "agent": "座席"}


@dataclass(frozen=True)
class LiveParams:
    partial_every: float = 1.0  # seconds of speech between two partials of a stretch
    end_silence: float = 0.6  # a pause this long ends a stretch: its final is sent
    max_stretch: float = 20.0  # a stretch this long is ended anyway (Whisper decodes under 30 s)
    pre_roll: float = 0.3  # audio kept before the first voiced frame (the onset of the first syllable)
    min_speech: float = 0.12  # voiced frames needed to open a stretch (webrtcvad's first 90 ms are voiced)
    vad_mode: int = 2
    frame_ms: int = 20  # AudioSocket sends 20 ms frames; webrtcvad takes 10, 20 or 30


@dataclass(frozen=True)
class Due:
    """What the tracker asks for: ``kind`` "partial" or "final" of stretch ``stretch`` covering
    [start, end) seconds of the leg's audio; ``samples`` is the stretch so far, ``new`` what came since
    the previous Due of this stretch (Vosk feeds only that)."""

    kind: str
    stretch: int
    start: float
    end: float
    samples: np.ndarray = field(repr=False, compare=False)
    new: np.ndarray = field(repr=False, compare=False)


class StretchTracker:
    def __init__(self, params: LiveParams = LiveParams(), rate: int = RATE) -> None:
        import webrtcvad

        self.params = params
        self.rate = rate
        self.frame = rate * params.frame_ms // 1000
        self._vad = webrtcvad.Vad(params.vad_mode)
        self._pending = np.zeros(0, np.int16)  # less than one VAD frame
        self._odd = b""  # half a sample
        self.samples_seen = 0
        self._pre: list[np.ndarray] = []  # recent frames before a stretch (pre-roll and onset)
        self._voiced_run = 0
        self._stretch: list[np.ndarray] = []
        self._stretch_start = 0  # sample index
        self._stretch_len = 0
        self._fed = 0  # samples of the stretch already handed out in a Due
        self._since_partial = 0
        self._silence = 0
        self.stretch_no = 0
        self.open = False

    def feed(self, pcm: bytes) -> list[Due]:
        """Audio as it arrives, cut anywhere (even inside a sample)."""
        if self._odd:
            pcm = self._odd + pcm
        cut = len(pcm) - len(pcm) % 2
        self._odd = pcm[cut:]
        data = np.frombuffer(pcm[:cut], np.int16)
        if len(self._pending):
            data = np.concatenate([self._pending, data])
        n = len(data) // self.frame
        self._pending = data[n * self.frame:].copy()
        out: list[Due] = []
        for i in range(n):
            frame = data[i * self.frame:(i + 1) * self.frame]
            voiced = self._vad.is_speech(frame.tobytes(), self.rate)
            self.samples_seen += self.frame
            due = self._frame(frame, voiced)
            if due is not None:
                out.append(due)
        return out

    def flush(self) -> list[Due]:
        """The stream ended: the open stretch is final."""
        return [self._close()] if self.open else []

    def _frame(self, frame: np.ndarray, voiced: bool) -> Due | None:
        p = self.params
        if not self.open:
            self._pre.append(frame)
            keep = int((p.pre_roll + p.min_speech) * self.rate / self.frame) + 1
            del self._pre[:-keep]
            self._voiced_run = self._voiced_run + 1 if voiced else 0
            if self._voiced_run * self.frame >= p.min_speech * self.rate:
                self.open = True
                self.stretch_no += 1
                self._stretch = list(self._pre)
                self._stretch_len = sum(len(f) for f in self._stretch)
                self._stretch_start = self.samples_seen - self._stretch_len
                self._pre = []
                self._fed = 0
                self._since_partial = self._stretch_len
                self._silence = 0
            return None
        self._stretch.append(frame)
        self._stretch_len += len(frame)
        self._since_partial += len(frame)
        self._silence = 0 if voiced else self._silence + len(frame)
        if self._silence >= p.end_silence * self.rate or self._stretch_len >= p.max_stretch * self.rate:
            return self._close()
        if self._since_partial >= p.partial_every * self.rate:
            self._since_partial = 0
            return self._due("partial")
        return None

    def _due(self, kind: str) -> Due:
        samples = np.concatenate(self._stretch) if self._stretch else np.zeros(0, np.int16)
        new = samples[self._fed:]
        self._fed = len(samples)
        start = self._stretch_start / self.rate
        return Due(kind, self.stretch_no, round(start, 3), round(start + len(samples) / self.rate, 3), samples, new)

    def _close(self) -> Due:
        due = self._due("final")
        self.open = False
        self._stretch = []
        self._voiced_run = 0
        self._pre = []
        return due


# ---------------------------------------------------------------- decoders
class LiveDecoder(Protocol):
    """Called from one thread at a time, in the order of the Dues, for one leg."""

    def partial(self, due: Due) -> str: ...

    def final(self, due: Due) -> list[Word]: ...


def words_text(words: Sequence[Word]) -> str:
    return engine.join_words([w.word for w in words if w.word not in engine.UNKNOWN_WORDS])


class WhisperLive:
    """Partials re-decode the last ``window`` seconds of the stretch; the final decodes it whole."""

    # A partial costs a fifth of a final here (asr/whisper.py partial_text): worth running at a stretch's
    # end, before its final, so its last words need not wait for the final's decode (asr/live.py).
    partial_before_final = True

    # The whole stretch (LiveParams.max_stretch is 20 s): a 10 s window cut the first words of longer
    # stretches mid-syllable and the partial read them as other words (real_8k partial CER 0.49, 0.45 with
    # 20 s), for 0.22 vs 0.25 CPU s per partial now that the encoder runs over the window, not 30 s.
    def __init__(self, backend: Any, window: float = 20.0) -> None:
        self.backend = backend
        self.window = window

    def _decode(self, samples: np.ndarray, offset: float) -> list[Word]:
        from threadpoolctl import threadpool_limits

        from asr import audio, whisper

        up = audio.resample(samples, RATE, whisper.RATE)
        with threadpool_limits(limits=1, user_api="blas"):
            words: list[Word] = self.backend.decode_stretch(up, offset=offset)
        return words

    def partial(self, due: Due) -> str:
        from threadpoolctl import threadpool_limits

        from asr import audio, whisper

        keep = int(self.window * RATE)
        up = audio.resample(due.samples[-keep:], RATE, whisper.RATE)
        with threadpool_limits(limits=1, user_api="blas"):
            return str(self.backend.partial_text(up))

    def final(self, due: Due) -> list[Word]:
        return self._decode(due.samples, due.start)


class VoskLive:
    """One KaldiRecognizer per leg on the shared model (Vosk's models are shared between recognizers;
    a recognizer is not)."""

    def __init__(self, backend: Any) -> None:
        import vosk

        self.rec = vosk.KaldiRecognizer(backend.model, float(RATE))
        self.rec.SetWords(True)
        self.fed = 0  # samples given to this recognizer: Vosk's word times run on across FinalResult()

    def _feed(self, new: np.ndarray) -> None:
        if len(new):
            self.rec.AcceptWaveform(new.astype(np.int16).tobytes())
            self.fed += len(new)

    def partial(self, due: Due) -> str:
        import json

        self._feed(due.new)
        text = json.loads(self.rec.PartialResult()).get("partial", "")
        return engine.join_words([w for w in str(text).split() if w not in engine.UNKNOWN_WORDS])

    def final(self, due: Due) -> list[Word]:
        self._feed(due.new)
        words = engine.parse_vosk_result(self.rec.FinalResult())
        # Times count from the recognizer's first sample (only stretches are fed): make them the leg's.
        base = (self.fed - len(due.samples)) / RATE
        return [Word(w.word, round(w.start - base + due.start, 3), round(w.end - base + due.start, 3), w.conf)
                for w in words]


def decoder_for(backend: Any) -> LiveDecoder:
    if hasattr(backend, "decode_stretch"):
        return WhisperLive(backend)
    return VoskLive(backend)
