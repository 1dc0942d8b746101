"""Recognition: a small backend interface (audio in, timed words out), the Vosk backend, and the
pipeline that turns a recording into a transcript (VAD, per-speaker tracks, segments, text).

Engine facts this module is built on (measured with vosk 0.3.45, see ../shared/models/README.md):
- loading a model takes seconds and hundreds of MB: load it once per worker process;
- a fresh ``KaldiRecognizer`` is slow for its first ~2 s of audio: keep one warm recognizer per sample
  rate and reuse it (``FinalResult()`` resets it for the next stretch);
- always declare the audio's real rate: a wrong rate raises nothing but garbles text and scales times;
- Chinese models put spaces between words; we keep words as Vosk gives them and join the display
  text without spaces between ideographs.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from asr import vad as vad_mod

UNKNOWN_WORDS = frozenset({"[unk]", "<unk>", "<UNK>"})
SEGMENT_GAP = 0.8  # seconds of silence between words that start a new segment


@dataclass(frozen=True)
class Word:
    word: str
    start: float
    end: float
    conf: float = 1.0


class SpeechBackend(Protocol):
    """What a recognizer must offer. A stronger Chinese engine only needs to implement this.

    ``decode`` gets one stretch of 16-bit mono PCM at its real ``sample_rate`` and returns the words
    with times in seconds from the start of that stretch. Calls come from one thread at a time.
    """

    name: str

    def decode(self, pcm: bytes, sample_rate: int) -> list[Word]: ...


class ModelError(Exception):
    """The configured model cannot be used; the message says what is missing and where."""


def check_model_dir(path: str | Path) -> Path:
    p = Path(path).expanduser()
    if not str(path):
        raise ModelError("未配置语音识别模型路径（settings asr.model_path / HOTLINE_ASR_MODEL_PATH）")
    if not (p / "am" / "final.mdl").exists():
        raise ModelError(f"语音识别模型不完整或不存在：{p}（缺少 am/final.mdl，见 README 的模型安装说明）")
    return p


# sha256 of the files of vosk-model-small-cn-0.22 as pinned by public projects (../shared/models/README.md).
KNOWN_MODELS: dict[str, dict[str, str]] = {
    "vosk-model-small-cn-0.22": {
        "am/final.mdl": "91eda2c04c4f599361cb92b0e5298ccdf6b3c7a1fa52bfcefcd2c4e07aa1c131",
        "graph/Gr.fst": "46d41a9b1723abccdcb354d731a5b58d87c060100d88ada1a3e31220f52b0434",
        "graph/HCLr.fst": "798af0d9ba6f2d727747f58e1e7b2305f8618bc8ea7f6c51beecd8a2c965b965",
        "ivector/final.ie": "c39d46fbff04efb7baa9660ae7a728b0e2f35a4a1250b56ed3a599e26956df86",
    },
}
MODEL_LAYOUT = ("am/final.mdl", "conf/mfcc.conf", "conf/model.conf", "ivector/final.ie", "ivector/final.dubm",
                "ivector/final.mat", "ivector/global_cmvn.stats", "ivector/online_cmvn.conf", "ivector/splice.conf")


def verify_model(path: str | Path) -> list[str]:
    """Problems with a model directory (empty list = fine): missing files, or checksums that differ from
    the known release of the same name (a truncated download, a different model under the old name)."""
    import hashlib

    p = Path(path)
    problems = [f"缺少 {rel}" for rel in MODEL_LAYOUT if not (p / rel).exists()]
    if not ((p / "graph" / "HCLr.fst").exists() or (p / "graph" / "HCLG.fst").exists()):
        problems.append("缺少 graph/HCLr.fst（或大模型的 graph/HCLG.fst）")
    for rel, expected in KNOWN_MODELS.get(p.name, {}).items():
        f = p / rel
        if f.exists():
            h = hashlib.sha256()
            with f.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            if h.hexdigest() != expected:
                problems.append(f"{rel} 校验和不符（{h.hexdigest()[:12]}…，应为 {expected[:12]}…）")
    return problems


def parse_vosk_result(raw: str) -> list[Word]:
    """Words of one ``Result()``/``FinalResult()`` JSON (needs ``SetWords(True)``)."""
    data = json.loads(raw)
    return [Word(str(w["word"]), float(w["start"]), float(w["end"]), float(w.get("conf", 1.0)))
            for w in data.get("result", ())]


class VoskBackend:
    """Vosk with one model per process and one warm recognizer per sample rate."""

    def __init__(self, model_path: str | Path, *, chunk_seconds: float = 0.25, log_level: int = -1) -> None:
        import vosk

        path = check_model_dir(model_path)
        vosk.SetLogLevel(log_level)
        started = time.perf_counter()
        self.model = vosk.Model(str(path))
        self.load_seconds = time.perf_counter() - started
        self.name = f"vosk:{path.name}"
        self.model_path = str(path)
        self.chunk_seconds = chunk_seconds
        self._recognizers: dict[int, Any] = {}
        # Vosk keeps counting time across FinalResult() on a reused recognizer (word times continue
        # from the previous call), so we count the samples fed per recognizer and subtract.
        self._fed: dict[int, int] = {}
        self._lock = threading.Lock()
        self._vosk = vosk

    def _recognizer(self, sample_rate: int) -> Any:
        rec = self._recognizers.get(sample_rate)
        if rec is None:
            rec = self._vosk.KaldiRecognizer(self.model, float(sample_rate))
            rec.SetWords(True)
            self._recognizers[sample_rate] = rec
        return rec

    def decode(self, pcm: bytes, sample_rate: int) -> list[Word]:
        step = int(sample_rate * self.chunk_seconds) * 2
        words: list[Word] = []
        with self._lock:
            rec = self._recognizer(sample_rate)
            base = self._fed.get(sample_rate, 0) / sample_rate
            try:
                for i in range(0, len(pcm), step):
                    if rec.AcceptWaveform(pcm[i:i + step]):
                        words.extend(parse_vosk_result(rec.Result()))
                words.extend(parse_vosk_result(rec.FinalResult()))
            except BaseException:
                # A recognizer left mid-utterance would leak audio into the next call: drop it.
                self._recognizers.pop(sample_rate, None)
                self._fed.pop(sample_rate, None)
                raise
            self._fed[sample_rate] = self._fed.get(sample_rate, 0) + len(pcm) // 2
        if base:
            words = [Word(w.word, max(0.0, round(w.start - base, 3)), max(0.0, round(w.end - base, 3)), w.conf)
                     for w in words]
        return words


# ---------------------------------------------------------------- transcripts
@dataclass(frozen=True)
class Track:
    """One speaker's audio: a channel of a stereo file or a separate caller/agent file."""

    speaker: str
    samples: np.ndarray
    sample_rate: int

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


@dataclass
class Transcript:
    text: str
    segments: list[dict[str, Any]]
    words: list[dict[str, Any]]
    duration: float
    engine: str
    decoded_seconds: float = 0.0  # audio actually given to the recognizer (after VAD)
    stats: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _is_cjk(ch: str) -> bool:
    return "\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff"


def join_words(words: Sequence[str]) -> str:
    """Display text: no space between Chinese words (Vosk's segmentation is not how people write),
    a space elsewhere (Korean, Latin, digits next to letters)."""
    out = ""
    for w in words:
        if out and not (_is_cjk(out[-1]) and _is_cjk(w[0])):
            out += " "
        out += w
    return out


def decode_track(backend: SpeechBackend, track: Track, vad: vad_mod.VadParams | None) -> tuple[list[list[Word]], float]:
    """Words of one track, grouped by decoded stretch, times from the start of the track."""
    rate = track.sample_rate
    if vad is not None:
        regions = vad_mod.voiced_regions(track.samples, rate, vad)
    else:
        regions = [(0.0, track.duration)] if len(track.samples) else []
    groups: list[list[Word]] = []
    decoded = 0.0
    for start, end in regions:
        a, b = int(start * rate), int(end * rate)
        piece = track.samples[a:b]
        if len(piece) == 0:
            continue
        decoded += len(piece) / rate
        words = backend.decode(piece.astype(np.int16).tobytes(), rate)
        groups.append([Word(w.word, round(w.start + a / rate, 3), round(w.end + a / rate, 3), w.conf)
                       for w in words if w.word not in UNKNOWN_WORDS])
    return groups, decoded


def build_transcript(groups_by_speaker: Sequence[tuple[str, list[list[Word]]]], duration: float, engine: str,
                     decoded_seconds: float = 0.0) -> Transcript:
    """Segments (speaker, start, end, text) in time order, words with char offsets into ``text``.

    ``text`` is the segments' texts joined by newlines, so a character span found in it (by the draft
    extractor) maps back to words and so to times in the recording.
    """
    raw_segments: list[tuple[float, str, list[Word]]] = []
    for speaker, groups in groups_by_speaker:
        for group in groups:
            current: list[Word] = []
            for w in group:
                if current and w.start - current[-1].end >= SEGMENT_GAP:
                    raw_segments.append((current[0].start, speaker, current))
                    current = []
                current.append(w)
            if current:
                raw_segments.append((current[0].start, speaker, current))
    raw_segments.sort(key=lambda s: (s[0], s[1]))
    text = ""
    segments: list[dict[str, Any]] = []
    words: list[dict[str, Any]] = []
    for _start, speaker, seg_words in raw_segments:
        if text:
            text += "\n"
        seg_start_char = len(text)
        first_word = len(words)
        for w in seg_words:
            if len(text) > seg_start_char and not (_is_cjk(text[-1]) and _is_cjk(w.word[0])):
                text += " "
            char_start = len(text)
            text += w.word
            words.append({"word": w.word, "start": w.start, "end": w.end, "conf": round(w.conf, 4),
                          "speaker": speaker, "char_start": char_start, "char_end": len(text)})
        segments.append({"speaker": speaker, "start": seg_words[0].start, "end": seg_words[-1].end,
                         "text": text[seg_start_char:], "char_start": seg_start_char, "char_end": len(text),
                         "words": [first_word, len(words)]})
    return Transcript(text=text, segments=segments, words=words, duration=round(duration, 3), engine=engine,
                      decoded_seconds=round(decoded_seconds, 3))


def transcribe(backend: SpeechBackend, tracks: Sequence[Track], *, vad: vad_mod.VadParams | None = None
               ) -> Transcript:
    """Decode every track (VAD first when ``vad`` is given) and merge them into one transcript."""
    started = time.perf_counter()
    per_speaker = []
    decoded = 0.0
    for track in tracks:
        groups, seconds = decode_track(backend, track, vad)
        decoded += seconds
        per_speaker.append((track.speaker, groups))
    duration = max((t.duration for t in tracks), default=0.0)
    result = build_transcript(per_speaker, duration, backend.name, decoded)
    result.stats = {"wall_seconds": round(time.perf_counter() - started, 3), "vad": vad is not None}
    return result


def tracks_of(channels: Sequence[np.ndarray], sample_rate: int, speakers: Sequence[str] = ("caller", "agent")
              ) -> list[Track]:
    """Tracks of one file: mono = one mixed track; stereo = caller (channel 0) and agent (channel 1)."""
    if len(channels) == 1 or all(np.array_equal(channels[0], c) for c in channels[1:]):
        return [Track("mixed", channels[0], sample_rate)]
    return [Track(speakers[i] if i < len(speakers) else f"channel{i}", c, sample_rate)
            for i, c in enumerate(channels)]
