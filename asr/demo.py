"""A recorded call for the demonstration data (``hotline screenshots``): a stereo WAV as MixMonitor's ``D``
option writes it (caller left, agent right) and the transcript recognition would store for it.

The audio is synthetic, not speech: voice-like tones on each speaker's channel while that line of the
transcript is "said", so the player, its duration and the seeking show on any machine (no recording of a
real citizen may ship with the project, and none is fetched). The transcript is written, not recognised.
"""
from __future__ import annotations

import math
import wave
from array import array
from pathlib import Path
from typing import Any

from aiohttp import web

from asr.service import SERVICE

RATE = 8000
LINES = [  # (speaker, start, end, text)
    ("caller", 0.6, 3.2, "喂，你好，我要反映一个噪音问题。"),
    ("agent", 3.8, 6.6, "您好，这里是12345热线，请您慢慢说。"),
    ("caller", 7.2, 12.0, "我住在南湖区幸福路18号，楼下工地每天晚上十一点多还在打桩。"),
    ("agent", 12.6, 15.0, "好的，施工单位是哪家，您知道吗？"),
    ("caller", 15.6, 18.4, "不清楚，围挡上写的是城建三公司。"),
    ("agent", 19.0, 23.6, "我们马上登记，转住建局核查处理，三个工作日内给您回复。"),
]
DURATION = 24.5


def write_wav(path: Path) -> float:
    """The synthetic call; returns its duration in seconds."""
    frames = int(DURATION * RATE)
    left, right = array("h", bytes(2 * frames)), array("h", bytes(2 * frames))
    for speaker, start, end, _text in LINES:
        channel, pitch = (left, 210.0) if speaker == "caller" else (right, 140.0)
        for i in range(int(start * RATE), int(end * RATE)):
            t = i / RATE
            syllables = 0.5 + 0.5 * math.sin(2 * math.pi * 4.0 * t)  # about four syllables a second
            voice = sum(math.sin(2 * math.pi * pitch * k * t) / k for k in (1, 2, 3))
            channel[i] = int(6000 * syllables * voice / 1.9)
    both = array("h", bytes(4 * frames))
    both[0::2], both[1::2] = left, right
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(both.tobytes())
    return frames / RATE


def transcript() -> dict[str, Any]:
    """The written lines as a transcript, one timed "word" per character spread evenly over its line (so the
    draft fields recognition derives from it know the second each was said)."""
    text, segments, words = "", [], []
    for speaker, start, end, line in LINES:
        if text:
            text += "\n"
        first, step = len(words), (end - start) / len(line)
        for i, ch in enumerate(line):
            words.append({"word": ch, "start": round(start + i * step, 2), "end": round(start + (i + 1) * step, 2),
                          "conf": 1.0, "speaker": speaker, "char_start": len(text) + i, "char_end": len(text) + i + 1})
        segments.append({"speaker": speaker, "start": start, "end": end, "text": line, "char_start": len(text),
                         "char_end": len(text) + len(line), "words": [first, len(words)]})
        text += line
    return {"text": text, "segments": segments, "words": words, "duration": DURATION,
            "engine": "demo (written, not recognised)"}


async def seed_recording(app: web.Application, call_id: str, directory: str | Path) -> Path:
    """Write the call under ``directory`` (the demo's ``asr.recordings_dir``) and store its job and transcript
    as a finished recognition would."""
    path = Path(directory) / f"{call_id}.wav"
    write_wav(path)
    store = app[SERVICE].store
    await store.queue(call_id, str(path), None, f"demo-{call_id}")
    await store.finish(call_id, str(path), transcript())
    return path
