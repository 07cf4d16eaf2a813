"""classify(method, path): the guarded routes, and every path that must not slip through."""

from __future__ import annotations

import pytest

from gatekeeper.core.classify import Route, RouteKind, classify

A = "/accounts/5WT00001"


@pytest.mark.parametrize(
    ("method", "path", "kind", "order_id"),
    [
        ("POST", f"{A}/orders", RouteKind.PLACE, None),
        ("POST", f"{A}/orders/dry-run", RouteKind.PLACE_DRY_RUN, None),
        ("POST", f"{A}/complex-orders", RouteKind.COMPLEX, None),
        ("POST", f"{A}/complex-orders/dry-run", RouteKind.COMPLEX_DRY_RUN, None),
        ("PUT", f"{A}/orders/901233", RouteKind.REPLACE, "901233"),
        ("PATCH", f"{A}/orders/901233", RouteKind.REPLACE, "901233"),
        ("POST", f"{A}/orders/901233/dry-run", RouteKind.REPLACE_DRY_RUN, "901233"),
        ("DELETE", f"{A}/orders/901233", RouteKind.CANCEL, "901233"),
        ("DELETE", f"{A}/complex-orders/77", RouteKind.CANCEL, "77"),
        ("POST", f"{A}/orders?x=1", RouteKind.PLACE, None),
    ],
)
def test_guarded_routes(method: str, path: str, kind: RouteKind, order_id: str | None) -> None:
    assert classify(method, path) == Route(kind, "5WT00001", order_id)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"{A}/orders"),
        ("GET", f"{A}/orders/live"),
        ("GET", f"{A}/orders/901233"),
        ("HEAD", f"{A}/orders"),
        ("OPTIONS", f"{A}/orders"),
        ("GET", f"{A}/complex-orders/live"),
        ("GET", f"{A}/positions"),
        ("GET", f"{A}/balances/USD"),
        ("POST", "/oauth/token"),
        ("POST", "/sessions"),
        ("DELETE", "/sessions"),
        ("POST", "/margin/accounts/5WT00001/dry-run"),
        ("GET", "/customers/me/orders/live"),
        ("DELETE", f"{A}/orders/"),
        ("DELETE", f"{A}/Orders/1"),
        ("PUT", f"{A}/watchlists/orders-list"),
    ],
)
def test_reads_and_other_paths_pass_through(method: str, path: str) -> None:
    assert classify(method, path).kind is RouteKind.PASS_THROUGH


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PATCH", f"{A}/complex-orders/77"),
        ("PUT", f"{A}/complex-orders/77"),
        ("POST", f"{A}/orders/901233/reconfirm"),
        ("POST", f"{A}/orders/"),
        ("POST", f"{A}/orders//dry-run"),
        ("POST", f"{A}/Orders"),
        ("POST", f"{A}/ORDERS"),
        ("POST", f"{A}/%6Frders"),
        ("POST", f"{A}/orders%2Fdry-run"),
        ("POST", f"{A}/orders/dry-run/"),
        ("POST", f"{A}/orders/dry-run/extra"),
        ("POST", f"{A}/orders/abc/dry-run"),
        ("PUT", f"{A}/orders/0012"),
        ("PUT", f"{A}/orders/-1"),
        ("PUT", f"{A}/orders"),
        ("PATCH", f"{A}/orders/1/extra"),
        ("POST", f"{A}/orders/1"),
        ("POST", f"{A}/complex-orders/1"),
        ("POST", "/accounts/5wt00001/orders"),
        ("POST", "/accounts/5WT00001;x/orders"),
        ("POST", "/accounts//orders"),
        ("POST", "/accounts/" + "9" * 40 + "/orders"),
        ("POST", "/Accounts/5WT00001/orders"),
        ("POST", "/customers/me/orders"),
        ("POST", "/orders"),
        ("PROPFIND", f"{A}/orders"),
        ("post", f"{A}/orders"),
        ("POST", f"{A}/orders%20"),
        ("POST", f"{A}/ orders"),
    ],
)
def test_anything_not_understood_that_could_change_an_order_is_unsupported(
    method: str, path: str
) -> None:
    assert classify(method, path).kind is RouteKind.UNSUPPORTED


def test_unsupported_route_names_only_a_well_formed_account() -> None:
    assert classify("PATCH", f"{A}/complex-orders/77").account_number == "5WT00001"
    assert classify("POST", "/accounts/5wt00001/orders").account_number is None


def test_route_kind_properties() -> None:
    assert RouteKind.PLACE.is_checked
    assert RouteKind.REPLACE_DRY_RUN.is_checked
    assert RouteKind.REPLACE_DRY_RUN.is_dry_run
    assert not RouteKind.PLACE.is_dry_run
    assert not RouteKind.CANCEL.is_checked
    assert not RouteKind.UNSUPPORTED.is_checked
    assert RouteKind.UNSUPPORTED.value == "unsupported_order_route"


@pytest.mark.parametrize(
    "path",
    [
        f"{A}/orders;v=1",
        f"{A}/%252Forders",
        f"{A}\\orders",
        f"{A}/x%5Corders",
    ],
)
def test_encoded_and_decorated_order_segments_are_unsupported(path: str) -> None:
    assert classify("POST", path).kind is RouteKind.UNSUPPORTED
