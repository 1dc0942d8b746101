"""Reading recordings: WAV (and anything libsndfile reads) to int16 channels, resampling, channel split.

Asterisk MixMonitor writes 8 kHz (sometimes 16 kHz) mono WAV with both directions mixed; with the ``D``
option it writes stereo (channel 0 = audio from the caller's channel, 1 = audio sent to it, i.e. the
agent); with ``r()``/``t()`` it writes separate caller and agent files. The rate is always taken from
the file header: Vosk takes any rate when told the truth, and garbles text and times when not.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

# webrtcvad only takes these rates; other rates are resampled to 16 kHz once, on reading.
VAD_RATES = (8000, 16000, 32000, 48000)


class AudioError(Exception):
    """The recording cannot be used (missing, empty, corrupt, unsupported). ``permanent`` says whether
    trying again later could help (a file MixMonitor has not finished writing may appear)."""

    def __init__(self, message: str, permanent: bool = True) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class Recording:
    channels: tuple[np.ndarray, ...]  # one int16 array per channel, same length
    sample_rate: int
    path: str = ""

    @property
    def duration(self) -> float:
        return len(self.channels[0]) / self.sample_rate if self.channels else 0.0


def read(path: str | Path, *, min_seconds: float = 0.05) -> Recording:
    """Read a recording as int16 channels at its own rate (resampled to 16 kHz only for odd rates)."""
    import soundfile as sf

    p = Path(path)
    if not p.exists():
        raise AudioError(f"录音文件不存在：{p}", permanent=False)
    try:
        data, rate = sf.read(str(p), dtype="int16", always_2d=True)
    except Exception as exc:  # libsndfile raises LibsndfileError/RuntimeError with the reason
        raise AudioError(f"录音文件无法读取（文件损坏或格式不支持）：{p.name}：{exc}") from None
    if rate <= 0 or data.shape[0] < int(min_seconds * rate):
        raise AudioError(f"录音文件为空或过短：{p.name}（{data.shape[0]} 个采样）")
    channels = tuple(np.ascontiguousarray(data[:, i]) for i in range(data.shape[1]))
    if rate not in VAD_RATES:
        channels = tuple(resample(c, rate, 16000) for c in channels)
        rate = 16000
    return Recording(channels, int(rate), str(p))


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """High-quality resampling (soxr) of int16 samples; used for odd rates and the 8 kHz benchmark set."""
    if from_rate == to_rate:
        return samples
    import soxr

    out = soxr.resample(samples.astype(np.float32) / 32768.0, from_rate, to_rate, quality="HQ")
    result: np.ndarray = np.clip(np.round(out * 32768.0), -32768, 32767).astype(np.int16)
    return result


def mono(recording: Recording) -> np.ndarray:
    """All channels mixed to one (for a single-speaker view of a stereo file)."""
    if len(recording.channels) == 1:
        return recording.channels[0]
    stacked = np.stack([c.astype(np.int32) for c in recording.channels])
    mixed: np.ndarray = (stacked.sum(axis=0) // len(recording.channels)).astype(np.int16)
    return mixed


def same_channels(recording: Recording) -> bool:
    """A stereo file whose channels carry the same signal is really mono (some recorders duplicate)."""
    chans = recording.channels
    return len(chans) > 1 and all(np.array_equal(chans[0], c) for c in chans[1:])


def pad_silence(samples: np.ndarray, rate: int, before: float, after: float) -> np.ndarray:
    """Digital silence around a clip (the benchmark's "hold and pauses" variant)."""
    return np.concatenate([np.zeros(int(before * rate), np.int16), samples, np.zeros(int(after * rate), np.int16)])
