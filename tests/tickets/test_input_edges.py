"""Control characters in paths and query strings are a 400 naming the parameter on every database (PostgreSQL's
text cannot hold NUL, so they used to reach it and fail there as a 500)."""
from __future__ import annotations

import pytest

from .conftest import Center


@pytest.mark.parametrize("path,field", [
    ("/api/v1/tickets/2026%00/history", "number"), ("/api/v1/tickets?q=%00", "q"), ("/api/v1/tickets?district=a%01b", "district"),
    ("/api/v1/knowledge?q=%00", "q"), ("/api/v1/surveys?ticket=%00", "ticket"),
])
async def test_control_characters_in_paths_and_queries(center: Center, path: str, field: str) -> None:
    body = await center.super.get(path, expect=400)
    assert body["field"] == field, body
