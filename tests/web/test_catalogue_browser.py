"""The 派单目录 page in real Chromium: the supervisor reads the catalogue and tries an address, a district
sub-center lands on its own district; no console error, no failed request."""
from __future__ import annotations

import pytest

from tickets.accounts.http import USERS

from .conftest import PASSWORD, Console, login
from .test_console_errors import settled, watch

pytestmark = pytest.mark.browser


async def test_supervisor_reads_and_tries_the_catalogue(console: Console, browser) -> None:  # type: ignore[no-untyped-def]
    page = await login(browser, console, "super1")
    problems = watch(page)
    await settled(page, console.base + "/supervisor")
    await page.click("nav >> text=派单目录")
    await page.wait_for_url(lambda url: url.endswith("/catalogue"))
    rows = page.locator("#catalogue-items tr.catalogue-item")
    assert await rows.count() > 5
    street_row = rows.filter(has_text="城乡建设/城市建设和市政管理/环境卫生").filter(has_text="南湖区")
    assert "属地街道" in await street_row.inner_text()
    assert "南湖区幸福街道办事处" in await page.inner_text("#catalogue-units")

    await page.fill("#try-category", "环境卫生")
    await page.fill("#try-address", "南湖区幸福路18号")
    await page.click("#catalogue-try button[type=submit]")
    await page.wait_for_selector("#try-result")
    result = await page.inner_text("#try-result")
    assert "南湖区幸福街道办事处" in result and "派单目录：城乡建设/城市建设和市政管理/环境卫生 @ 南湖区幸福街道" in result
    assert problems == [], problems


async def test_district_sub_center_starts_on_its_district(console: Console, browser) -> None:  # type: ignore[no-untyped-def]
    await console.app[USERS].create_user("nh1", PASSWORD, "supervisor", display_name="南湖分中心",
                                         department_code="nh_12345")
    page = await login(browser, console, "nh1")
    problems = watch(page)
    await settled(page, console.base + "/catalogue")
    assert await page.input_value("#cat-place") == "南湖区"
    places = await page.locator("#catalogue-items tr.catalogue-item td:nth-child(2)").all_inner_texts()
    assert places and all(p in ("全市", "南湖区") or p.startswith("南湖区") for p in places)
    assert "东城区" not in " ".join(places)
    assert problems == [], problems
