"""The survey attempts' timers: arq jobs deferred to each attempt's due time, one job id per (survey, attempt).

arq's own ``enqueue_job`` takes three round trips to Redis per job (WATCH, EXISTS, MULTI..EXEC). Under 50 agents
replying, those were 7 % of the event loop's time (py-spy, benchmarks/ticket_cpu.py), and each round trip is
also a wait for the GIL behind the ticket writer's thread. Here the timers asked for in one turn of the event
loop (the replies of one commit batch) go to Redis in one script call, which keeps ``enqueue_job``'s rule: a
job whose key or result already exists is not enqueued again. The jobs are arq's own (``serialize_job``, its key
prefixes), so arq's worker runs them unchanged.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from arq.constants import job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from arq.utils import timestamp_ms, to_ms, to_unix_ms

# KEYS[1] the queue, then each job's key and result key; ARGV per job: id, score (ms), expiry (ms), payload.
# Returns 1 per job enqueued, 0 per job that already existed (enqueue_job's None).
_ENQUEUE_MANY = """
local added = {}
for i = 1, (#KEYS - 1) / 2 do
  local a = (i - 1) * 4
  if redis.call('EXISTS', KEYS[2 * i], KEYS[2 * i + 1]) == 0 then
    redis.call('PSETEX', KEYS[2 * i], ARGV[a + 3], ARGV[a + 4])
    redis.call('ZADD', KEYS[1], ARGV[a + 2], ARGV[a + 1])
    added[i] = 1
  else
    added[i] = 0
  end
end
return added
"""

FUNCTION = "survey_attempt"
KEEP_AFTER_DUE = timedelta(days=7)  # a timer not run a week after its attempt fell due is dropped (the sweep
                                    # still finds the survey in SQL)


def job_id(survey_id: int, attempt: int) -> str:
    return f"survey:{survey_id}:{attempt}"


class SurveyTimers:
    """Sets attempts' timers on the arq queue ``queue``, many per Redis call."""

    def __init__(self, jobs: Any, queue: str, clock: Callable[[], datetime]) -> None:
        self.jobs = jobs  # an arq ArqRedis
        self.queue = queue
        self.clock = clock
        self._script = jobs.register_script(_ENQUEUE_MANY)
        self._wanted: list[tuple[int, int, datetime]] = []
        self._sent: asyncio.Future[list[bool]] | None = None
        self._calls: set[asyncio.Task[list[bool]]] = set()  # the event loop holds tasks only weakly

    async def set(self, survey_id: int, attempt: int, due_at: datetime) -> bool:
        """The attempt's timer, deferred to ``due_at``; False if it was already set (by another process, a
        sweep). Timers asked for in the same turn of the event loop share one call to Redis, sent in a later
        turn; a caller that goes away does not cancel the call the others wait for."""
        if self._sent is None:
            loop = asyncio.get_running_loop()
            self._sent = loop.create_future()
            loop.call_soon(self._send)
        sent, index = self._sent, len(self._wanted)
        self._wanted.append((survey_id, attempt, due_at))
        return (await asyncio.shield(sent))[index]

    def _send(self) -> None:
        wanted, sent = self._wanted, self._sent
        self._wanted, self._sent = [], None
        assert sent is not None
        task = asyncio.ensure_future(self._enqueue(wanted))
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)
        task.add_done_callback(lambda t: _settle(sent, t))

    async def _enqueue(self, wanted: list[tuple[int, int, datetime]]) -> list[bool]:
        now = self.clock()
        enqueued_ms = timestamp_ms()  # as enqueue_job: the wall time the job was queued, not the service's clock
        keys: list[str] = [self.queue]
        args: list[Any] = []
        for survey_id, attempt, due_at in wanted:
            jid = job_id(survey_id, attempt)
            keys += [job_key_prefix + jid, result_key_prefix + jid]
            expires = KEEP_AFTER_DUE + max(due_at - now, timedelta(0))
            payload = serialize_job(FUNCTION, (survey_id, attempt), {}, None, enqueued_ms,
                                    serializer=self.jobs.job_serializer)
            args += [jid, to_unix_ms(due_at), to_ms(expires), payload]
        added = await self._script(keys=keys, args=args)
        return [bool(a) for a in added]


def _settle(sent: asyncio.Future[list[bool]], task: asyncio.Future[list[bool]]) -> None:
    if sent.cancelled():
        return
    if task.cancelled():
        sent.cancel()
    elif task.exception() is not None:
        sent.set_exception(task.exception())  # type: ignore[arg-type]
    else:
        sent.set_result(task.result())
