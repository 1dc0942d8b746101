"""Which file a call's recording is, and whether a browser can play it, before any byte is served.

The path always comes from the recognition job (what telephony reported from MixMonitor), never from a
client. It must lie inside ``asr.recordings_dir`` once symlinks are resolved, so a stored path such as
``../../etc/passwd`` or a link out of the spool serves nothing. The header check reads at most 64 KiB: a
RIFF/WAVE file needs a ``fmt `` chunk and a ``data`` chunk with samples in it (MixMonitor leaves a 44-byte
WAV with an empty ``data`` chunk for a call that never reached an agent); other formats (``.gsm``,
``.mp3``) are only checked for being non-empty, the browser says the rest.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

HEADER_BYTES = 64 * 1024


@dataclass(frozen=True)
class RecordingFile:
    path: Path | None  # the file to serve; None when ``problem`` is set
    problem: str  # "" | "not_recorded" (no recording known) | "outside_dir" | "missing" | "empty" | "corrupt"
    message: str  # what the page tells the listener (Chinese)
    size: int = 0


def locate(recording_path: str, recordings_dir: str) -> RecordingFile:
    """The recording at ``recording_path`` (relative paths are taken inside ``recordings_dir``), checked."""
    if not recording_path:
        return RecordingFile(None, "missing", "这通电话没有录音。")
    base = Path(recordings_dir).resolve() if recordings_dir else None
    raw = Path(recording_path)
    if not raw.is_absolute() and base is not None:
        raw = base / raw
    path = raw.resolve()
    if base is not None and not path.is_relative_to(base):
        return RecordingFile(None, "outside_dir",
                             f"录音文件不在录音目录（asr.recordings_dir = {recordings_dir}）内，不予播放，请联系管理员核对配置。")
    try:
        size = os.stat(path).st_size
    except OSError:
        return RecordingFile(None, "missing", f"录音文件不存在：{path.name}（可能尚未写完、已被清理或存储未挂载）。")
    if not path.is_file() or size == 0:
        return RecordingFile(None, "empty", f"录音文件为空：{path.name}。")
    if path.suffix.lower() == ".wav":
        try:
            with open(path, "rb") as f:
                problem = wav_problem(f.read(HEADER_BYTES))
        except OSError as exc:
            return RecordingFile(None, "missing", f"录音文件无法读取：{path.name}（{exc.strerror}）。")
        if problem == "empty":
            return RecordingFile(None, "empty", f"录音文件中没有声音数据：{path.name}（通话可能未接通）。")
        if problem:
            return RecordingFile(None, "corrupt", f"录音文件已损坏，无法播放：{path.name}（{problem}）。")
    return RecordingFile(path, "", "", size)


def wav_problem(head: bytes) -> str:
    """'' for a playable WAV header, 'empty' for one without samples, else what is wrong (for the message)."""
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
        return "不是 WAV 文件头"
    pos, fmt = 12, False
    while pos + 8 <= len(head):
        chunk, size = head[pos:pos + 4], struct.unpack_from("<I", head, pos + 4)[0]
        if chunk == b"fmt ":
            if size < 16 or pos + 8 + 16 > len(head):
                return "格式块不完整"
            channels, rate = struct.unpack_from("<HI", head, pos + 10)
            if channels == 0 or rate == 0:
                return "声道数或采样率为 0"
            fmt = True
        elif chunk == b"data":
            if not fmt:
                return "数据块前没有格式块"
            # MixMonitor writes the sizes when it closes the file; a file still being written says 0.
            return "empty" if size == 0 and pos + 8 >= len(head) else ""
        pos += 8 + size + (size & 1)
    return "没有数据块" if fmt else "没有格式块"
