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
        ("GET", f"{A}/orders.json"),
        ("OPTIONS", "/customers/me/orders"),
        ("GET", f"{A}/complex-orders/live"),
        ("GET", f"{A}/positions"),
        ("GET", f"{A}/balances/USD"),
        ("POST", "/oauth/token"),
        ("POST", "/sessions"),
        ("DELETE", "/sessions"),
        ("POST", "/margin/accounts/5WT00001/dry-run"),
        ("GET", "/customers/me/orders/live"),
        ("PUT", "/watchlists/orders-list"),
        ("DELETE", "/watchlists/my-orders"),
        ("POST", "/quote-alerts"),
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
        # issue 8, item 5: anything under /accounts/ but a read must be a known route
        ("POST", f"{A}/orders.json"),
        ("POST", f"{A}/orders+"),
        ("POST", f"{A}/orders~"),
        ("POST", f"{A}/%EF%BD%8F%EF%BD%92%EF%BD%84%EF%BD%85%EF%BD%92%EF%BD%93"),
        ("POST", f"{A}/order%C5%BF"),
        ("POST", f"{A}/transfers"),
        ("PUT", f"{A}/watchlists/orders-list"),
        ("OPTIONS", f"{A}/orders"),
        ("DELETE", f"{A}/orders/"),
        ("DELETE", f"{A}/Orders/1"),
        ("DELETE", f"{A}/orders/1.json"),
        ("DELETE", A),
        ("POST", "/accounts"),
        # look-alikes of /accounts, and order collections anywhere
        ("POST", "/%61ccounts/5WT00001/orders.json"),
        ("POST", "/%EF%BD%81ccounts/5WT00001/orders"),
        ("POST", "/account%C5%BF/5WT00001/positions"),
        ("POST", "/accounts.json/5WT00001/orders"),
        ("POST", "/customers/me/orders.json"),
        ("POST", "/customers/me/o%CC%81rders"),
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
