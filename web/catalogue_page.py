"""The 派单目录 page of the supervisor console: who leads and who co-handles each category at each place
(city, district, street), the city's units by level, and a try-out that routes a category and an address
exactly as ``GET /api/v1/tickets/{number}/routing`` would (rules, then the catalogue; no model)."""
from __future__ import annotations

from aiohttp import web

from tickets.accounts.service import Principal
from tickets.routing import rules as routing
from tickets.routing.http import ROUTING
from web.pages import page, render

CENTER = ("agent", "supervisor", "admin")


@page(*CENTER)
async def catalogue_page(request: web.Request, who: Principal) -> web.StreamResponse:
    service = request.app[ROUTING]
    book = service.catalogue()
    q = request.query
    # a district sub-center starts on its own district; everyone may look at the whole city
    place = q.get("place", who.district or "")[:100]
    text = q.get("q", "")[:100]
    items = [i for i in book["items"]
             if (not place or i["place"]["district"] in ("", place)) and (not text or text in i["category"]
                                                                           or text in i["lead_name"])]
    items.sort(key=lambda i: (i["category"], len(i["place"]["label"]) if i["place"]["district"] else 0,
                              i["place"]["label"]))
    tried = None
    category, address = q.get("try_category", "")[:100], q.get("try_address", "")[:200]
    if category or address:
        ticket = routing.TicketInput(title=category, address=address, category=category)
        tried = routing.suggest(ticket, service.config, None).as_dict()
    units = {u["code"]: u for u in book["units"]}
    by_district: dict[str, list[dict[str, object]]] = {}
    for u in book["units"]:
        if u["district"]:
            by_district.setdefault(u["district"], []).append(u)
    return render(request, "catalogue.html", {
        "book": book, "items": items, "place": place, "q": text, "units": units, "by_district": by_district,
        "city_units": [u for u in book["units"] if u["level"] == "city"],
        "try_category": category, "try_address": address, "tried": tried})
