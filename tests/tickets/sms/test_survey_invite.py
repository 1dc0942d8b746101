"""The phone survey that never reaches the caller ends in an SMS invitation: the real survey service, three
failed calls, the system's survey_unreachable on the ticket, and the text through the SMPP server."""
from __future__ import annotations

from tests.tickets.sms.conftest import LINK_BASE
from tests.tickets.surveys.conftest import Clock, build_world, local
from tickets.sms.service import SmsService, read_templates
from tickets.sms.store import SmsStore


async def test_failed_phone_survey_sends_the_evaluation_invitation(database_url, redis_url, settings_factory, smsc):
    clock = Clock(local(2026, 11, 23, 9, 0))
    world = await build_world(database_url, redis_url, settings_factory, clock)
    settings = world.settings.with_overrides(sms={"host": "127.0.0.1", "port": smsc.port, "system_id": "hotline",
                                                  "link_base": LINK_BASE})
    sms = SmsService(SmsStore(world.store.sessions, world.store.read_sessions), settings, clock,
                     read_templates(settings.config_file(settings.sms.templates_file)))
    world.store.row_hooks.append(sms.row_hook)
    try:
        t = await world.replied()
        n = t["number"]
        assert await sms.step() == 2  # 受理 and 答复
        s = await world.survey_of(n)
        for attempt, (at, outcome) in enumerate([((2026, 11, 24, 9, 0), "busy"), ((2026, 11, 24, 11, 0), "no_answer"),
                                                  ((2026, 11, 24, 14, 0), "no_answer")], start=1):
            clock.set_local(*at)
            assert await world.service.job(s.id, attempt) == "queued"
            expected = "unreachable" if attempt == 3 else "retry"
            assert await world.result((s.id, attempt), outcome) == expected
        assert await sms.step() == 1
        texts = smsc.messages()
        assert [m.destination for m in texts] == ["13800138000"] * 3
        invite = texts[-1].text
        assert f"工单{n}电话回访未能联系到您" in invite and f"{LINK_BASE}/citizen/status?n={n}" in invite
        assert [r.kind for r in await sms.store.for_ticket(n)] == ["accepted", "replied", "survey_invite"]
    finally:
        world.store.row_hooks.remove(sms.row_hook)
        await sms.close()
        await world.service.drain()
        await world.redis.aclose()
        for e in set(world.engines):
            await e.dispose()
