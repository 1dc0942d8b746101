"""AMI framing on bytes: split the TCP stream into whole messages first, then decode each one.

panoramisk decodes every TCP chunk before framing, so a UTF-8 character (a Chinese ``CallerIDName``) split
across two reads loses bytes. Here the stream is cut at ``\\r\\n\\r\\n`` on bytes and each whole message is
decoded as UTF-8 with replacement characters: a bad byte shows as U+FFFD, it never raises.
Pure: no I/O, no clock.
"""
from __future__ import annotations

BANNER_PREFIX = b"Asterisk Call Manager/"
TERMINATOR = b"\r\n\r\n"
# A message longer than this without a terminator means the stream is not AMI (or is corrupt):
# drop the buffer rather than grow without bound.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024

Value = str | list[str]


class Framer:
    """Incremental framer: ``feed(bytes) -> [message text, ...]``; remembers the banner version."""

    __slots__ = ("_buf", "banner", "dropped")

    def __init__(self) -> None:
        self._buf = bytearray()
        self.banner: str | None = None
        self.dropped = 0  # bytes thrown away because no terminator came in MAX_MESSAGE_BYTES

    def feed(self, data: bytes) -> list[str]:
        buf = self._buf
        buf += data
        if self.banner is None:
            if len(buf) < len(BANNER_PREFIX) and BANNER_PREFIX.startswith(bytes(buf)):
                return []
            if buf.startswith(BANNER_PREFIX):
                end = buf.find(b"\r\n")
                if end < 0:
                    return []
                self.banner = buf[len(BANNER_PREFIX):end].decode("utf-8", "replace").strip()
                del buf[:end + 2]
            else:
                self.banner = ""  # no banner (mid-stream capture): frame from here
        out: list[str] = []
        start = 0
        while True:
            end = buf.find(TERMINATOR, start)
            if end < 0:
                break
            if end > start:
                out.append(buf[start:end].decode("utf-8", "replace"))
            start = end + 4
        if start:
            del buf[:start]
        if len(buf) > MAX_MESSAGE_BYTES:
            self.dropped += len(buf)
            buf.clear()
        return out

    @property
    def pending(self) -> int:
        return len(self._buf)


def parse_message(text: str) -> dict[str, Value]:
    """``Key: value`` lines to a dict; a repeated key (``Output``, ``Variable``) becomes a list.

    Values keep everything after the first ``": "`` (they may hold ``": "`` themselves) and may be empty.
    A line without ``": "`` but ending in ``":"`` is a key with an empty value; other lines are ignored.
    """
    msg: dict[str, Value] = {}
    for line in text.split("\r\n"):
        key, sep, value = line.partition(": ")
        if not sep:
            if line.endswith(":"):
                key, value = line[:-1], ""
            else:
                continue
        old = msg.get(key)
        if old is None:
            msg[key] = value
        elif isinstance(old, list):
            old.append(value)
        else:
            msg[key] = [old, value]
    return msg
