"""Live transcription in a recognition worker: AudioSocket streams in, partial and final lines out to Redis.

One ``LiveTranscriber`` per worker process. It follows at most ``max_calls`` calls at once (a call is its
Linkedid; its caller and agent legs are two streams and may land on different workers); a stream of one
more call is told "capacity" at once: the agent page says live text is not available for this call and
the recording is transcribed after the call as before (that path never depended on live text).

Every message goes to Redis twice: published on ``CHANNEL`` (the server processes fan it out to the agent's
WebSocket) and appended to the call's backlog list (a page opened or reloaded mid-call reads it first).
Message shape, ``{"type": "asr_live", "call_id", "speaker", "label", "event", ...}``:
- ``started`` / ``stopped`` (``reason`` key of ``audiosocket.END_REASONS``, ``message`` in Chinese) /
  ``fallback`` (``reason`` "capacity");
- ``partial``: ``stretch``, ``text`` so far (replaces the previous partial of that stretch), ``start``/``end``
  seconds of the leg's audio;
- ``final``: the same plus ``words`` [[word, start, end], ...]; for the caller also ``fields``: the draft
  fields heard so far (asr/drafts.py on everything the caller said), each with the words it came from.
Decoding runs in one thread of its own (beside the after-call job's thread) with its own loaded model, so a
long after-call job never holds a live partial back.
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import numpy as np

from asr import audiosocket, drafts, streaming
from asr.streaming import Due, LiveParams

log = logging.getLogger("hotline.asr.live")

CHANNEL = "hotline:asr:live"
BACKLOG_PREFIX = "hotline:asr:live:call:"
# A leg being followed has this key, renewed every BEAT seconds: a worker killed mid-call (SIGKILL, OOM) sends
# no "stopped", so the server sees the key lapse and tells the page (asr/live_feed.py).
LEG_PREFIX = "hotline:asr:live:leg:"
BEAT = 2.0
LEG_TTL = 10.0
BACKLOG_TTL = 3 * 3600
BACKLOG_KEEP = 400

DEFAULT_PARAMS = LiveParams()

Publish = Callable[[dict[str, Any]], Awaitable[None]]


def dumps(msg: dict[str, Any]) -> str:
    return json.dumps(msg, ensure_ascii=False, separators=(",", ":"))


class RedisPublisher:
    """Publish + backlog in one round trip (MULTI), so a page reading the backlog then the channel misses
    nothing that a reader of both would see."""

    def __init__(self, redis: Any, channel: str = CHANNEL, prefix: str = BACKLOG_PREFIX) -> None:
        self.redis = redis
        self.channel = channel
        self.prefix = prefix

    async def __call__(self, msg: dict[str, Any]) -> None:
        data = dumps(msg)
        key = self.prefix + msg["call_id"]
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.rpush(key, data)
                pipe.ltrim(key, -BACKLOG_KEEP, -1)
                pipe.expire(key, BACKLOG_TTL)
                pipe.publish(self.channel, data)
                await pipe.execute()
        except Exception as exc:  # noqa: BLE001  Redis away: live text is lost, the call and after-call text are not
            log.warning("live transcript message not published (%s: %s)", type(exc).__name__, exc)

    async def beat(self, legs: list[str], ended: list[str]) -> None:
        """Renew the keys of the legs still followed, drop those that ended (``call_id:speaker``)."""
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for leg in legs:
                    pipe.set(LEG_PREFIX + leg, "1", px=int(LEG_TTL * 1000))
                for leg in ended:
                    pipe.delete(LEG_PREFIX + leg)
                await pipe.execute()
        except Exception as exc:  # noqa: BLE001  Redis away: the keys lapse, the pages say so
            log.warning("live transcript heartbeat not written (%s: %s)", type(exc).__name__, exc)


def live_fields(text: str, city: str | None = None) -> dict[str, Any]:
    """Draft fields of what the caller said so far, in the ticket form's names, each with the words heard."""
    fields = drafts.extract(text, city=city)
    values = drafts.ticket_values(fields)
    out: dict[str, Any] = {}
    for name, value in values.items():
        if name == "content" or (name == "urgency" and value == "normal"):
            continue
        f = fields[name]
        entry: dict[str, Any] = {"value": value, "heard": [s.get("text", "") for s in f.get("sources", ())
                                                           if s.get("text")]}
        if name == "request_type":
            entry["label"] = f.get("label", "")
        if name == "urgency":
            entry["handoff"] = f.get("handoff", [])
            entry["note"] = f.get("note", "")
        out[name] = entry
    return out


class LegSession:
    """One leg of one call: its tracker, its decoder and the decodes it still owes, in order.

    Finals are never skipped; partials are coalesced (only the newest waits), so a leg whose decodes are
    slower than speech falls behind on partials, not on finals."""

    def __init__(self, owner: LiveTranscriber, call_id: str, speaker: str) -> None:
        self.owner = owner
        self.call_id = call_id
        self.speaker = speaker
        self.tracker = streaming.StretchTracker(owner.params)
        self.decoder: streaming.LiveDecoder | None = None
        self.finals: deque[Due] = deque()
        self.partial: Due | None = None
        self.wake = asyncio.Event()
        self.closing = False
        self.finished_stretch = 0
        self.shown: tuple[int, float] = (0, 0.0)  # stretch and end of the last partial published
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"live-{call_id}-{speaker}")

    def base(self, event: str, **more: Any) -> dict[str, Any]:
        return {"type": "asr_live", "call_id": self.call_id, "speaker": self.speaker,
                "label": streaming.SPEAKER_LABELS.get(self.speaker, self.speaker), "event": event, **more}

    def feed(self, pcm: bytes) -> None:
        for due in self.tracker.feed(pcm):
            self._submit(due)

    def _submit(self, due: Due) -> None:
        if self.partial is not None:
            # The waiting partial is replaced; its new audio is not lost (Vosk must hear every sample).
            due = replace(due, new=np.concatenate([self.partial.new, due.new]))
            self.partial = None
        if due.kind == "final":
            self.finals.append(due)
        else:
            self.partial = due
        self.wake.set()

    async def finish(self) -> None:
        for due in self.tracker.flush():
            self._submit(due)
        self.closing = True
        self.wake.set()
        await self.task

    async def _decode(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.owner.executor, fn, *args)

    async def _run(self) -> None:
        # Made at once, not at the first stretch: a fresh Vosk recognizer takes a moment.
        self.decoder = await self._decode(self.owner.decoder_factory)
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.finals or self.partial is not None:
                if self.finals:
                    due = self.finals.popleft()
                    await self._final(due)
                else:
                    waiting, self.partial = self.partial, None
                    if waiting is not None and waiting.stretch > self.finished_stretch:
                        await self._partial(waiting)
            if self.closing:
                return

    async def _partial(self, due: Due) -> None:
        assert self.decoder is not None
        try:
            text = await self._decode(self.decoder.partial, due)
        except Exception:
            log.exception("live partial of %s/%s failed", self.call_id, self.speaker)
            return
        if text and due.stretch > self.finished_stretch:
            self.shown = (due.stretch, due.end)
            await self.owner.publish(self.base("partial", stretch=due.stretch, text=text, start=due.start,
                                               end=due.end))

    def _speech_shown(self, due: Due) -> bool:
        """A partial of this stretch already covered all its speech (the final's last ``end_silence``
        seconds are the pause that ended it)."""
        stretch, end = self.shown
        return stretch == due.stretch and end >= due.end - self.owner.params.end_silence - 0.001

    async def _final(self, due: Due) -> None:
        assert self.decoder is not None
        if getattr(self.decoder, "partial_before_final", False) and not self._speech_shown(due):
            # A stretch's last words are those no partial reached: the stretch ends at a pause, often
            # before its next whole second. Its final is the slow decode (Whisper: ~1 CPU s, the 30 s
            # window), so a quick partial of the whole stretch shows them first (a delay of end_silence
            # plus ~0.2 CPU s instead of plus ~1).
            await self._partial(replace(due, kind="partial"))
        self.finished_stretch = max(self.finished_stretch, due.stretch)
        try:
            words = await self._decode(self.decoder.final, due)
        except Exception:
            log.exception("live final of %s/%s failed", self.call_id, self.speaker)
            words = []
        text = streaming.words_text(words)
        msg = self.base("final", stretch=due.stretch, text=text, start=due.start, end=due.end,
                        words=[[w.word, float(w.start), float(w.end)] for w in words])
        if self.speaker == "caller" and text:
            self.owner.heard.setdefault(self.call_id, []).append(text)
            said = "，".join(self.owner.heard[self.call_id])
            try:
                msg["fields"] = await self._decode(live_fields, said, self.owner.city)
            except Exception:
                log.exception("live draft fields of %s failed", self.call_id)
        await self.owner.publish(msg)


class LegHandler(audiosocket.StreamHandler):
    def __init__(self, owner: LiveTranscriber) -> None:
        self.owner = owner
        self.session: LegSession | None = None

    async def start(self, uuid: str) -> bool:
        found = audiosocket.call_of_uuid(uuid)
        if found is None:
            self.owner.count("unknown_call")
            log.warning("audiosocket stream %s names no call (its UUID is not made from a Linkedid): dropped", uuid)
            return False
        call_id, speaker = found
        owner = self.owner
        if call_id not in owner.calls and len(owner.calls) >= owner.max_calls:
            owner.count("capacity")
            await owner.publish({"type": "asr_live", "call_id": call_id, "speaker": speaker,
                                 "label": streaming.SPEAKER_LABELS.get(speaker, speaker), "event": "fallback",
                                 "reason": "capacity", "message": audiosocket.END_REASONS["capacity"]})
            return False
        owner.calls.setdefault(call_id, set()).add(speaker)
        self.session = LegSession(owner, call_id, speaker)
        await owner.beat([f"{call_id}:{speaker}"], [])  # the key exists before anyone hears "started"
        owner.count("started")
        await owner.publish(self.session.base("started", engine=owner.engine_name))
        return True

    async def audio(self, pcm: bytes) -> None:
        if self.session is not None:
            self.session.feed(pcm)

    async def end(self, reason: str, detail: str) -> None:
        s = self.session
        if s is None:
            return
        self.session = None
        try:
            await s.finish()
            self.owner.give_back(s.decoder)
        finally:
            owner = self.owner
            legs = owner.calls.get(s.call_id, set())
            legs.discard(s.speaker)
            if not legs:
                owner.calls.pop(s.call_id, None)
                owner.heard.pop(s.call_id, None)
            owner.count("ended:" + reason)
            await owner.beat([], [f"{s.call_id}:{s.speaker}"])
            await owner.publish(s.base("stopped", reason=reason, detail=detail,
                                       message=audiosocket.END_REASONS.get(reason, reason)))


class LiveTranscriber:
    """The worker's live side: an AudioSocket server whose streams become published lines."""

    def __init__(self, backend: Any, publish: Publish, *, max_calls: int = 2, params: LiveParams = DEFAULT_PARAMS,
                 city: str | None = None, host: str = "127.0.0.1", port: int = 0, reuse_port: bool = False,
                 idle_timeout: float = 10.0) -> None:
        self.backend = backend
        self.publish = publish
        self.max_calls = max_calls
        self.params = params
        self.city = city
        self.engine_name = str(getattr(backend, "name", ""))
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="asr-live")
        self.calls: dict[str, set[str]] = {}
        self.heard: dict[str, list[str]] = {}
        self.stats: dict[str, int] = {}
        self._spare: list[streaming.LiveDecoder] = []
        self._beats: asyncio.Task[None] | None = None
        self.server = audiosocket.AudioSocketServer(lambda: LegHandler(self), host, port, reuse_port=reuse_port,
                                                    idle_timeout=idle_timeout)

    async def beat(self, legs: list[str], ended: list[str]) -> None:
        renew = getattr(self.publish, "beat", None)
        if renew is not None:
            await renew(legs, ended)

    async def _beat_loop(self) -> None:
        while True:
            await asyncio.sleep(BEAT)
            await self.beat([f"{c}:{s}" for c, legs in self.calls.items() for s in legs], [])

    def decoder_factory(self) -> streaming.LiveDecoder:
        """A decoder for a new leg: a warm one a finished leg gave back, else a new one (a fresh Vosk
        recognizer spends ~1.5 CPU seconds on its first second of audio, measured in the benchmark)."""
        try:
            return self._spare.pop()
        except IndexError:
            return streaming.decoder_for(self.backend)

    def give_back(self, decoder: streaming.LiveDecoder | None) -> None:
        if decoder is not None and len(self._spare) < 2 * self.max_calls:
            self._spare.append(decoder)

    def _warm(self) -> None:
        decoder = streaming.decoder_for(self.backend)
        silence = np.zeros(streaming.RATE, np.int16)
        decoder.final(Due("final", 0, 0.0, 1.0, silence, silence))
        self._spare.append(decoder)

    def count(self, what: str) -> None:
        self.stats[what] = self.stats.get(what, 0) + 1

    async def start(self, warm: bool = True) -> int:
        """Listen; with ``warm``, one decoder is readied first (in the decoding thread), so the first call's
        first words are not the slowest."""
        if warm and self.backend is not None:
            await asyncio.get_running_loop().run_in_executor(self.executor, self._warm)
        self._beats = asyncio.get_running_loop().create_task(self._beat_loop(), name="asr-live-beat")
        return await self.server.start()

    async def close(self) -> None:
        await self.server.close()
        if self._beats is not None:
            self._beats.cancel()
            await asyncio.gather(self._beats, return_exceptions=True)
        self.executor.shutdown(wait=False, cancel_futures=True)
