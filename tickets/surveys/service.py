"""The async shell of 回访: schedules surveys when tickets are replied, wakes them on the Redis job queue (arq
deferred jobs), keeps the global limit of simultaneous survey calls in Redis, claims each attempt in SQL,
hands calls to a dialer (an ``originate`` coroutine wired by server.py to ``telephony.survey_dialer``) and
records what came back on the ticket through the workflow.

Safety with several server processes:
- arq job id ``survey:<id>:<attempt>``: one timer per attempt, however often it is enqueued;
- a due survey waits in one Redis sorted set (``<prefix>:waiting``, by due time), popped atomically together
  with taking a call slot (Lua), so the oldest due survey is dialed first and no herd of retries forms;
- the SQL claim ``UPDATE surveys SET state='dialing' WHERE id=? AND state='scheduled' AND attempts=?``: the
  process whose UPDATE changes one row places the call, every other gets 0 rows and drops it;
- call slots are leases in a sorted set scored by expiry (Redis server time): a crashed process stops
  renewing them and they free themselves after ``lease_seconds``. Each lease has its own token (survey,
  attempt and a nonce): a duplicate pop of a survey already being dialed must not free the live call's slot.
Redis holds nothing that the SQL rows cannot rebuild: ``sweep`` puts every due survey back in the waiting set
and gives up on calls whose result never came (``max_call_seconds``).
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable, Mapping
from zoneinfo import ZoneInfo

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from config.settings import Settings
from tickets.accounts.service import Principal
from tickets.errors import Conflict, InvalidField, NotFound, TicketError
from tickets.service import TicketStore
from tickets.surveys import schedule as rules_mod
from tickets.surveys.store import SurveyStore, view
from tickets.surveys.timers import SurveyTimers
from tickets.workflow import HistoryEntry

log = logging.getLogger("hotline.surveys")

SURVEY_QUEUE = "hotline:surveys"
SYSTEM = Principal(id=0, username="system", name="自动回访", role="system", department_id=None,
                   department_code=None, interface=None)
Originate = Callable[[dict[str, Any]], Awaitable[Any]]

# Take a call slot and the oldest waiting survey in one step; expired leases are dropped first.
_ACQUIRE_POP = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return false end
local m = redis.call('ZPOPMIN', KEYS[2])
if #m == 0 then return false end
local token = m[1] .. '|' .. ARGV[3]
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), token)
return {m[1], token}
"""
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = 0
for i = 1, #ARGV - 1 do n = n + redis.call('ZADD', KEYS[1], 'XX', 'CH', now + tonumber(ARGV[#ARGV]), ARGV[i]) end
return n
"""
_IN_USE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
"""


def _asks_survey(entry: HistoryEntry) -> bool:
    """A reply (or an answer on the spot) surveys its caller; a merged caller's relayed reply does when its phone
    number was not surveyed already."""
    if entry.action == "relay_reply":
        return bool(entry.data.get("survey"))
    return entry.action in ("reply", "answer_on_spot")


def _round(ticket: Mapping[str, Any]) -> int:
    """The reopen round a reply belongs to: one survey per (ticket, round)."""
    return int(ticket.get("reopen_count") or 0)


def _member(survey_id: int, attempt: int) -> str:
    return f"{survey_id}:{attempt}"


def _parse_member(raw: bytes | str) -> tuple[int, int]:
    text = raw.decode() if isinstance(raw, bytes) else raw
    a, b = text.split(":")
    return int(a), int(b)


class SurveyService:
    def __init__(self, tickets: TicketStore, surveys: SurveyStore, redis: Any, settings: Settings,
                 clock: Callable[[], datetime], *, originate: Originate | None = None,
                 can_dial: Callable[[], bool] | None = None, jobs: Any = None, owner: str | None = None,
                 key_prefix: str = "hotline:survey") -> None:
        self.tickets = tickets
        self.surveys = surveys
        self.redis = redis
        self.settings = settings
        self.clock = clock
        self.originate = originate
        self.can_dial = can_dial or (lambda: self.originate is not None)
        self.jobs = jobs  # an arq ArqRedis for deferred jobs; None = rely on the sweep alone
        self.timers = SurveyTimers(jobs, SURVEY_QUEUE, clock) if jobs is not None else None
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        s = settings.survey
        self.tz = ZoneInfo(settings.server.timezone)
        # Calling hours follow the same working-day calendar as deadlines (the city's holiday file first).
        self.rules = rules_mod.Rules.from_settings(s, self.tz, tickets.policy.calendar.is_working_day)
        self.max_concurrent = s.max_concurrent
        # Settings not in SurveySettings yet (see INTEGRATION-survey.md); read with defaults meanwhile.
        self.lease_seconds = float(getattr(s, "lease_seconds", 90))
        self.max_call_seconds = float(getattr(s, "max_call_seconds", 900))
        self.sweep_batch = max(1000, 50 * self.max_concurrent)
        self.k_slots = f"{key_prefix}:slots"
        self.k_waiting = f"{key_prefix}:waiting"
        self._acquire_pop = redis.register_script(_ACQUIRE_POP)
        self._renew = redis.register_script(_RENEW)
        self._in_use = redis.register_script(_IN_USE)
        self._active: set[str] = set()  # slot tokens of the calls this process placed
        self._tokens: dict[str, str] = {}  # "id:attempt" -> its slot token, for calls placed here
        self._acting: set[str] = set()  # ticket numbers the service itself is acting on (listener skips)
        self._tasks: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------ ticket events
    def write_hook(self, conn: Connection, ticket: Mapping[str, Any], entry: HistoryEntry
                   ) -> Callable[[], None] | None:
        """TicketStore write hook: a reply's survey row, in the reply's own transaction. A reply the client was
        told about is a survey owed even if the process dies the next instant; written after the reply's
        commit, as it was, a crash in between left the caller never surveyed. Returns the timer's setting, which
        the store runs after the commit: a timer lost to a crash in between only delays the first attempt to
        the next sweep, which queues due surveys from SQL."""
        if not self.settings.survey.enabled or ticket.get("number") in self._acting or not _asks_survey(entry):
            return None
        values, due = self._survey_row(ticket, ticket.get("replied_at") or entry.at)
        sid = self.surveys.create_in(conn, ticket["number"], values)
        if sid is None or due is None or self.timers is None:
            return None
        return lambda: self._spawn(self.enqueue(sid, 1, due))

    def listener(self, ticket: dict[str, Any], entry: HistoryEntry) -> None:
        """TicketStore listener (called after commit, in the event loop)."""
        if not self.settings.survey.enabled or ticket.get("number") in self._acting:
            return
        if entry.action in ("reopen", "archive", "merge"):
            self._spawn(self._cancel(ticket, entry))
        elif entry.action in ("record_survey", "survey_unreachable"):
            self._spawn(self._closed_elsewhere(ticket, entry))

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("survey task failed", exc_info=task.exception())

    async def drain(self) -> None:
        """Wait for the listener's tasks (tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _survey_row(self, ticket: Mapping[str, Any], replied: datetime) -> tuple[dict[str, Any], datetime | None]:
        """The survey row a reply asks for, and its first attempt's due time (None: not dialed automatically)."""
        now = self.clock()
        mode = rules_mod.survey_mode(ticket)
        due = rules_mod.first_due(replied, self.rules) if mode == "auto" else None
        state = {"auto": "scheduled", "manual": "manual", "opted_out": "opted_out"}[mode]
        return {
            "ticket_number": ticket["number"], "round": _round(ticket),
            "mode": mode, "state": state, "phone": ticket.get("caller_phone") or "",
            "topic": (ticket.get("title") or ticket.get("content") or "")[:200],
            "request_type": ticket.get("request_type") or "", "department_id": ticket.get("lead_department_id"),
            "replied_at": replied, "due_at": due, "attempts": 0, "answers": {}, "note": "",
            "created_at": now, "updated_at": now, "finished_at": now if mode == "opted_out" else None,
        }, due

    async def schedule(self, ticket: Mapping[str, Any], replied_at: datetime | None = None) -> int | None:
        """A survey for a ticket replied outside a reply's own transaction (a backfill; the scheduler's
        benchmark): its row in the writer's next batch, then its timer. None when the round has one."""
        values, due = self._survey_row(ticket, ticket.get("replied_at") or replied_at or self.clock())
        try:
            sid = await self.tickets.writer.submit(lambda conn: self.surveys.create_in(conn, ticket["number"], values))
        except IntegrityError:  # another process inserted the same round between our check and insert
            return None
        if sid is not None and due is not None:
            await self.enqueue(sid, 1, due)
        return sid

    async def enqueue(self, survey_id: int, attempt: int, due_at: datetime) -> None:
        """The attempt's timer: an arq job deferred to the due time, id unique per (survey, attempt); the timers
        of one turn of the event loop go to Redis together (``SurveyTimers``)."""
        if self.timers is not None:
            await self.timers.set(survey_id, attempt, due_at)

    async def _cancel(self, ticket: Mapping[str, Any], entry: HistoryEntry) -> None:
        ticket_id = await self.surveys.ticket_id(ticket["number"])
        if ticket_id is not None:
            label = {"reopen": "工单已重办", "archive": "工单已归档", "merge": "工单已合并"}[entry.action]
            await self.surveys.cancel_for_ticket(ticket_id, self.clock(), label, ("scheduled", "manual"))

    async def _closed_elsewhere(self, ticket: Mapping[str, Any], entry: HistoryEntry) -> None:
        ticket_id = await self.surveys.ticket_id(ticket["number"])
        if ticket_id is None:
            return
        if entry.action == "record_survey":
            await self.surveys.close_for_ticket(ticket_id, self.clock(), "done", via="ticket",
                                                satisfaction=entry.data.get("satisfaction"),
                                                resolved=entry.data.get("resolved"), agent_id=entry.actor_id)
        else:
            await self.surveys.close_for_ticket(ticket_id, self.clock(), "unreachable", agent_id=entry.actor_id)

    # ------------------------------------------------------------ due attempts
    async def job(self, survey_id: int, attempt: int) -> str:
        """Body of the arq job: a due attempt joins the waiting set, then calls are placed if slots are free."""
        row = await self.surveys.get(survey_id)
        if row is None or row.state != "scheduled" or row.attempts != attempt - 1:
            return "stale"
        if row.due_at is None or row.due_at > self.clock():
            return "not_due"  # the sweep picks it up when due
        await self.redis.zadd(self.k_waiting, {_member(survey_id, attempt): row.due_at.timestamp()}, nx=True)
        if self.can_dial():
            await self.pump()
        return "queued"

    async def pump(self) -> int:
        """Place calls while a slot is free and a survey waits. Returns how many calls were placed."""
        placed = 0
        if not self.rules.hours.is_open(self.clock()):
            return 0  # a backlog left at closing time waits in the set for the next window (sweep/job)
        while self.can_dial():
            got = await self._acquire_pop(keys=[self.k_slots, self.k_waiting],
                                          args=[self.max_concurrent, int(self.lease_seconds * 1000),
                                                uuid.uuid4().hex[:12]])
            if not got:
                break
            member, token = got
            result = await self._dial(*_parse_member(member), token=token.decode() if isinstance(token, bytes)
                                      else str(token))
            if result == "placed":
                placed += 1
            elif result == "unavailable":
                break
        return placed

    async def _dial(self, survey_id: int, attempt: int, token: str) -> str:
        member = _member(survey_id, attempt)
        now = self.clock()
        row = await self.surveys.claim(survey_id, attempt, now, self.owner)
        if row is None:
            await self._release(token)
            return "lost_claim"
        self._active.add(token)
        self._tokens[member] = token
        request = {
            "survey_id": survey_id, "attempt": attempt, "ticket": row.ticket_number,
            "number": rules_mod.dial_number(row.phone), "topic": row.topic, "request_type": row.request_type,
        }
        try:
            assert self.originate is not None
            await self.originate(request)
        except Exception as exc:  # AMI down or not the leader: the call was never placed; give it back
            log.warning("survey %s attempt %s not placed: %s", survey_id, attempt, exc)
            await self.surveys.unclaim(survey_id, attempt, self.clock())
            self._tokens.pop(member, None)
            await self._release(token)
            await self.redis.zadd(self.k_waiting, {member: row.due_at.timestamp() if row.due_at else now.timestamp()},
                                  nx=True)
            return "unavailable"
        # The ActionID is stored with the call's result (one write less per call on the hot path).
        return "placed"

    async def _release(self, token: str) -> None:
        self._active.discard(token)
        await self.redis.zrem(self.k_slots, token)

    async def slots_in_use(self) -> int:
        return int(await self._in_use(keys=[self.k_slots], args=[]))

    async def renew_leases(self) -> int:
        if not self._active:
            return 0
        return int(await self._renew(keys=[self.k_slots], args=[*self._active, int(self.lease_seconds * 1000)]))

    # ------------------------------------------------------------ results
    async def on_call_result(self, result: Mapping[str, Any]) -> str:
        """One attempt ended (the dialer's report). Returns what was decided: recorded/retry/unreachable/..."""
        survey_id, attempt = int(result["survey_id"]), int(result["attempt"])
        # The slot is released only by the process that placed the call (it holds the token); a call ended
        # elsewhere (sweep of another process) frees its slot when the lease expires.
        token = self._tokens.pop(_member(survey_id, attempt), None)
        try:
            return await self._on_call_result(survey_id, attempt, result)
        finally:
            if token is not None:
                await self._release(token)
            if self.can_dial():
                await self.pump()

    async def _on_call_result(self, survey_id: int, attempt: int, result: Mapping[str, Any]) -> str:
        now = self.clock()
        raw = {k: str(v) for k, v in (result.get("answers") or {}).items()}
        outcome = str(result.get("outcome") or "lost")
        if outcome not in rules_mod.CALL_OUTCOMES:
            outcome = "failed"
        reason = result.get("reason")
        row = await self.surveys.end_attempt(survey_id, attempt, now, outcome, None if reason is None else str(reason),
                                             raw, result.get("uniqueid"), rules_mod.parse_answers(raw),
                                             result.get("action_id"))
        if row is None and result.get("recover"):
            # The sweep found this call still "dialing": if its result was stored but what follows failed
            # (database error while recording on the ticket), decide again from what was stored.
            row = await self.surveys.get(survey_id)
            if row is not None and row.state == "dialing" and row.attempts == attempt:
                outcome = (await self.surveys.attempt_outcomes(survey_id))[attempt - 1]
            else:
                row = None
        if row is None or row.state != "dialing":
            return "ignored"
        answers = dict(row.answers or {})
        decision = rules_mod.decide(outcome, answers, attempt, row.last_attempt_at or now, now, self.rules)
        if isinstance(decision, rules_mod.Retry):
            if await self.surveys.reschedule(survey_id, ["dialing"], decision.due_at, now):
                await self.enqueue(survey_id, attempt + 1, decision.due_at)
            return "retry"
        if isinstance(decision, rules_mod.Record):
            params = {"satisfaction": decision.satisfaction, "resolved": decision.resolved, "via": "ivr",
                      "note": "自动语音回访"}
            ok = await self._act(row.ticket_number, "record_survey", params)
            if ok is not True:
                await self.surveys.finish(survey_id, ["dialing"], "cancelled", now, note=f"回访结果未能记录：{ok}",
                                          satisfaction=decision.satisfaction, resolved=decision.resolved, via="ivr")
                return "cancelled"
            await self.surveys.finish(survey_id, ["dialing"], "done", now, satisfaction=decision.satisfaction,
                                      resolved=decision.resolved, via="ivr")
            return "recorded"
        outcomes = await self.surveys.attempt_outcomes(survey_id)
        note = rules_mod.unreachable_note(outcomes, answers)
        ok = await self._act(row.ticket_number, "survey_unreachable", {"attempts": attempt, "note": note})
        await self.surveys.finish(survey_id, ["dialing"], "unreachable" if ok is True else "cancelled", now,
                                  note=note if ok is True else f"{note}；未能记录：{ok}",
                                  resolved=answers.get("resolved"))
        return "unreachable" if ok is True else "cancelled"

    async def _act(self, number: str, action: str, params: dict[str, Any], who: Principal = SYSTEM) -> bool | str:
        """Act on the ticket through the workflow; a refusal (ticket moved on meanwhile) is returned, not raised."""
        self._acting.add(number)
        try:
            await self.tickets.act(number, action, params, who)
            return True
        except TicketError as exc:
            if who is not SYSTEM:
                raise
            log.info("survey result for %s not recorded: %s", number, exc.message)
            return exc.message
        finally:
            self._acting.discard(number)

    # ------------------------------------------------------------ recovery
    async def sweep(self) -> dict[str, int]:
        """Rebuild what Redis may have lost: every due survey back in the waiting set; calls whose result never
        came (crashed process, lost AMI events) are ended as "lost" and retried. Harmless when run twice."""
        now = self.clock()
        # The oldest due surveys are enough to fill every free line until the next sweep (arq jobs add the
        # rest as they fall due); reading the whole backlog each minute would not scale to 100,000.
        due = await self.surveys.due_ids(now, limit=self.sweep_batch)
        if due:
            await self.redis.zadd(self.k_waiting, {_member(i, a): d.timestamp() for i, a, d in due}, nx=True)
        stale = await self.surveys.stale_dialing(now - timedelta(seconds=self.max_call_seconds))
        for row in stale:
            await self.on_call_result({"survey_id": row.id, "attempt": row.attempts, "outcome": "lost",
                                       "recover": True})
        placed = await self.pump() if self.can_dial() else 0
        return {"due": len(due), "lost": len(stale), "placed": placed}

    async def run(self, tick: float = 5.0, sweep_every: float = 60.0) -> None:
        """Background loop of a process that can dial: renew leases, place calls, sweep now and then."""
        loop = asyncio.get_running_loop()
        next_sweep = loop.time()
        while True:
            try:
                await self.renew_leases()
                if loop.time() >= next_sweep:
                    await self.sweep()
                    next_sweep = loop.time() + sweep_every
                elif self.can_dial():
                    await self.pump()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("survey loop step failed")
            await asyncio.sleep(tick)

    # ------------------------------------------------------------ agents
    async def manual(self, survey_id: int, who: Principal, params: Mapping[str, Any]) -> dict[str, Any]:
        """An agent takes a survey over: ``{}`` takes it off the dialer; ``{satisfaction, resolved, note}`` records
        the answer; ``{"unreachable": true, "note"}`` records that the caller could not be reached."""
        row = await self.surveys.get(survey_id)
        if row is None:
            raise NotFound("survey_not_found", f"回访 {survey_id} 不存在")
        if row.state == "dialing":
            raise Conflict("survey_in_progress", "自动回访电话正在进行中，请稍后再试")
        if row.state not in ("scheduled", "manual"):
            raise Conflict("survey_closed", f"该回访已结束（{view(row)['state_label']}）")
        now = self.clock()
        if not await self.surveys.take_manual(survey_id, who.id, now):
            raise Conflict("survey_in_progress", "回访状态刚刚改变，请刷新后重试")
        note = params.get("note") or ""
        if not isinstance(note, str):
            raise InvalidField("note", "note 必须是文字")
        if params.get("unreachable"):
            await self._act(row.ticket_number, "survey_unreachable",
                            {"attempts": row.attempts, "note": note or "人工回访未能联系到来电人"}, who)
            await self.surveys.finish(survey_id, ["manual"], "unreachable", now, via="agent", agent_id=who.id, note=note)
        elif "satisfaction" in params:
            resolved = params.get("resolved")
            await self._act(row.ticket_number, "record_survey",
                            {"satisfaction": params.get("satisfaction"), "resolved": resolved, "via": "agent",
                             "note": note}, who)
            await self.surveys.finish(survey_id, ["manual"], "done", now, via="agent", agent_id=who.id, note=note,
                                      satisfaction=params["satisfaction"], resolved=resolved)
        got = await self.surveys.get_with_attempts(survey_id)
        assert got is not None
        return view(got[0], mask=False, attempts=got[1])


# ---------------------------------------------------------------- arq
async def survey_attempt(ctx: dict[str, Any], survey_id: int, attempt: int) -> str:
    """arq job: attempt ``attempt`` of survey ``survey_id`` is due."""
    return await ctx["surveys"].job(survey_id, attempt)


def worker(service: SurveyService, redis_pool: Any, **kw: Any) -> Any:
    """An arq Worker for the survey queue, run inside a server process that can dial (see INTEGRATION)."""
    from arq import func
    from arq.worker import Worker

    return Worker(functions=[func(survey_attempt, name="survey_attempt", keep_result=0, max_tries=3)],
                  redis_pool=redis_pool, queue_name=SURVEY_QUEUE, handle_signals=False, keep_result=0,
                  ctx={"surveys": service}, poll_delay=kw.pop("poll_delay", 1.0), max_jobs=kw.pop("max_jobs", 20), **kw)


async def keep_running(arq_worker: Any, backoff_min: float = 0.1, backoff_max: float = 10.0) -> None:
    """Run the arq worker until cancelled; start it again when it stops on an error.

    arq's poll loop ends at the first Redis error (a restarted redis-server, a network cut): without this the
    process would never take a survey job again. Jobs are in Redis and the scheduler's sweep queues due
    attempts again, so nothing is lost but the pause.
    """
    delay = backoff_min
    while True:
        started = asyncio.get_running_loop().time()
        try:
            await arq_worker.async_run()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if asyncio.get_running_loop().time() - started > 60:
                delay = backoff_min  # it had been running: a new failure, not the same one again
            log.warning("survey worker stopped (%s: %s); starting it again in %.2f s", type(exc).__name__, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, backoff_max)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
