"""``hotline screenshots OUTDIR``: start a throw-away server with demonstration data (temporary SQLite and
a private redis-server), log in as each role in headless Chromium and save each main page at 1366x768
(the viewport an agent sees) and as a full page; the department's inbox and ticket also at a phone's 390x844,
the wallboard at a TV's 1920x1080 after a busy hour of calls (``telephony.demo``).

server.py registers the command and passes its application factory in (``register_cli(sub, create_app)``),
and the asr side's demo call (``asr.demo.seed_recording``: this module imports neither ``server`` nor ``asr``)."""
from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web as aioweb

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]

AppFactory = Callable[[Any], aioweb.Application]  # server.create_app: settings -> the whole server
# asr.demo.seed_recording: (app, call_id, recordings_dir) -> the recording it wrote, with its transcript stored
SeedRecording = Callable[[aioweb.Application, str, str], Awaitable[Any]]


async def _context(browser: Any, **options: Any) -> Any:
    """A browser context that waits up to 2 minutes for pages and elements: a busy machine (CI, a server
    under load) can take longer than Playwright's 30 s, and a screenshot run should not fail for it."""
    ctx = await browser.new_context(**options)
    ctx.set_default_timeout(120_000)
    ctx.set_default_navigation_timeout(120_000)
    return ctx


async def _play_from_a_line(page: Any) -> None:
    """The recording panel as a listener leaves it: loaded, a transcript line clicked, paused there."""
    await page.wait_for_function("() => { const p = document.getElementById('recording');"
                                 " return !p || p.dataset.state === 'ready' || p.dataset.state === 'error'; }")
    if await page.get_attribute("#recording", "data-state") != "ready":
        raise RuntimeError("the recording player did not load: " + await page.inner_text("#recording"))
    lines = page.locator("#rec-lines .rec-line")
    if await lines.count() > 2:
        await lines.nth(2).click()
        await page.eval_on_selector("#rec-audio", "a => { a.pause(); a.dispatchEvent(new Event('timeupdate')); }")


async def _busy_hour(app: aioweb.Application, settings: Any) -> None:
    """The last 50 minutes of a busy hotline (``telephony.demo``) folded into the live view, the call records and
    the missed-call list (the second one taken by a colleague), ending now and never reaching back past the
    centre's midnight (the day's counters would start over)."""
    from telephony import demo as telephony_demo
    from telephony.service import SERVICE

    now = time.time()
    local = datetime.fromtimestamp(now, ZoneInfo(settings.server.timezone))
    since_midnight = now - local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    svc = app[SERVICE]
    for event in telephony_demo.busy_hour(now, span=max(60.0, min(3000.0, since_midnight - 1))):
        svc.submit(event)
    await svc.drain()
    missed = await svc.store.callbacks("open")
    if len(missed) > 1:
        await svc.store.claim(missed[1]["id"], "liuyang", "刘洋")


async def take(outdir: Path, settings: Any, app_factory: AppFactory, executable: str = CHROMIUM,
               seed_recording: SeedRecording | None = None) -> list[Path]:
    from playwright.async_api import async_playwright

    import web
    from web import demo

    outdir.mkdir(parents=True, exist_ok=True)
    app = app_factory(settings)
    web.setup(app, schedule_reports=False)
    runner = aioweb.AppRunner(app)
    await runner.setup()
    # Port 0: the kernel picks a free port while binding (picking one first raced with other processes).
    await aioweb.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[-1][1]}"
    shots: list[Path] = []
    try:
        info = await demo.seed(app)
        n = info["numbers"]
        if seed_recording is not None:
            await seed_recording(app, info["recorded_call"], settings.asr.recordings_dir)
        # Before the pages: the agent's console lists the missed calls (one taken by a colleague), the wallboard
        # shows the hour.
        await _busy_hour(app, settings)
        prepare = {"16-ticket-recording": _play_from_a_line}
        plan = [
            (None, [("01-login", "/login")]),
            ("wangli", [("02-agent-draft", f"/agent?ticket={n['draft']}"), ("03-agent-new", "/agent"),
                        ("04-knowledge-agent", "/knowledge?q=供暖"),
                        ("16-ticket-recording", f"/tickets/{n['recorded']}")]),
            ("zjj01", [("05-dept-inbox", "/dept"), ("06-dept-ticket", f"/tickets/{n.get('dept_ticket') or n['draft']}"),
                       ("17-knowledge-dept", "/knowledge")]),
            ("zhaomin", [("07-supervisor", "/supervisor"), ("08-reports-monthly", "/reports?kind=monthly"),
                         ("09-reports-weekly", "/reports?kind=weekly"), ("10-report-print", "/reports/print?kind=monthly"),
                         ("11-knowledge-editor", "/knowledge"), ("12-ticket-supervisor",
                                                                 f"/tickets/{n.get('extension') or n['draft']}")]),
            (settings.server.admin_username, [("18-admin-audit", "/admin/audit")]),
        ]
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, timeout=120_000)
            for user, pages in plan:
                ctx = await _context(browser, viewport={"width": 1366, "height": 768}, locale="zh-CN")
                page = await ctx.new_page()
                if user:
                    await page.goto(base + "/login")
                    await page.fill("#username", user)
                    await page.fill("#password", settings.server.admin_password
                                    if user == settings.server.admin_username else demo.PASSWORD)
                    await page.click("button[type=submit]")
                    await page.wait_for_url(lambda url: "/login" not in url)
                for name, path in pages:
                    await page.goto(base + path)
                    await page.wait_for_load_state("networkidle")
                    if name in prepare:
                        await prepare[name](page)
                    for suffix, full in (("", False), ("-full", True)):
                        target = outdir / f"{name}{suffix}.png"
                        await page.screenshot(path=str(target), full_page=full)
                        shots.append(target)
                await ctx.close()
            # The same reports on a wallboard-sized screen (2560x1440): the layout scales up, nothing stretches.
            ctx = await _context(browser, viewport={"width": 2560, "height": 1440}, locale="zh-CN")
            page = await ctx.new_page()
            await page.goto(base + "/login")
            await page.fill("#username", "zhaomin")
            await page.fill("#password", demo.PASSWORD)
            await page.click("button[type=submit]")
            await page.wait_for_url(lambda url: "/login" not in url)
            await page.goto(base + "/reports?kind=monthly")
            target = outdir / "13-reports-2560x1440.png"
            await page.screenshot(path=str(target))
            shots.append(target)
            # The wallboard on the TV it is made for (1920x1080, read from across the room), after a busy hour.
            await page.set_viewport_size({"width": 1920, "height": 1080})
            await page.goto(base + "/wallboard")
            await page.wait_for_load_state("networkidle")
            await page.wait_for_function("() => document.body.dataset.loaded === '1' && "
                                         "document.querySelectorAll('#agents .agent').length > 0")
            target = outdir / "19-wallboard-1920x1080.png"
            await page.screenshot(path=str(target))
            shots.append(target)
            await ctx.close()
            # Department pages on a phone (390x844, touch): handlers sign and reply from theirs.
            ctx = await _context(browser, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                                            locale="zh-CN")
            page = await ctx.new_page()
            await page.goto(base + "/login")
            await page.fill("#username", "zjj01")
            await page.fill("#password", demo.PASSWORD)
            await page.tap("button[type=submit]")
            await page.wait_for_url(lambda url: "/login" not in url)
            for name, path in (("14-dept-inbox-390", "/dept"),
                               ("15-dept-ticket-390", f"/tickets/{n.get('dept_ticket') or n['draft']}")):
                await page.goto(base + path)
                await page.wait_for_load_state("networkidle")
                for suffix, full in (("", False), ("-full", True)):
                    target = outdir / f"{name}{suffix}.png"
                    await page.screenshot(path=str(target), full_page=full)
                    shots.append(target)
            await ctx.close()
            await browser.close()
    finally:
        await runner.cleanup()
    return shots


def _cmd(settings: Any, args: argparse.Namespace, app_factory: AppFactory,
         seed_recording: SeedRecording | None = None) -> int:
    with tempfile.TemporaryDirectory(prefix="hotline-screens-") as tmp:
        demo_settings = settings.with_overrides(server={"data_dir": tmp, "admin_password": "screens-admin-1"},
                                                database={"url": ""}, redis={"url": ""}, ami={"enabled": False},
                                                asr={"recordings_dir": str(Path(tmp) / "recordings")})
        shots = asyncio.run(take(Path(args.outdir), demo_settings, app_factory, args.chromium, seed_recording))
    for path in shots:
        print(path)
    return 0


def register_cli(subparsers: Any, app_factory: AppFactory, seed_recording: SeedRecording | None = None) -> None:
    """Add ``hotline screenshots OUTDIR``; ``app_factory`` is ``server.create_app``, ``seed_recording`` the asr
    side's demo call (without it the recorded ticket's player says there is no recording)."""
    cmd = subparsers.add_parser("screenshots", help="save screenshots of the console's main pages (demo data)")
    cmd.add_argument("outdir")
    cmd.add_argument("--chromium", default=CHROMIUM, help="Chromium executable (default /usr/bin/chromium)")
    cmd.set_defaults(func=lambda settings, args: _cmd(settings, args, app_factory, seed_recording))
