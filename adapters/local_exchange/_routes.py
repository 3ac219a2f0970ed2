"""The route tables: REST (method, path) and WS-API methods -> handler, security, weight and
order count (ref/binance.md §1.3)."""

from __future__ import annotations

__all__ = ["ORDER_ENDPOINTS", "ROUTES", "WS_METHODS", "depth_weight", "klines_weight"]

# (method, path) -> (handler name, security, weight, orders)
# security: "NONE", "KEY" (API key only), "SIGNED"
ROUTES: dict[tuple[str, str], tuple[str, str, int, int]] = {
    ("GET", "/fapi/v1/ping"): ("ping", "NONE", 1, 0),
    ("GET", "/fapi/v1/time"): ("time", "NONE", 1, 0),
    ("GET", "/fapi/v1/exchangeInfo"): ("exchange_info", "NONE", 1, 0),
    ("GET", "/fapi/v1/depth"): ("depth", "NONE", -1, 0),
    ("GET", "/fapi/v1/ticker/bookTicker"): ("book_ticker", "NONE", 2, 0),
    ("GET", "/fapi/v1/premiumIndex"): ("premium_index", "NONE", 1, 0),
    ("GET", "/fapi/v1/klines"): ("klines", "NONE", -1, 0),
    ("GET", "/fapi/v1/aggTrades"): ("agg_trades", "NONE", 20, 0),
    ("GET", "/fapi/v1/trades"): ("trades", "NONE", 5, 0),
    ("GET", "/fapi/v1/ticker/24hr"): ("ticker_24hr", "NONE", -1, 0),
    ("GET", "/fapi/v1/fundingRate"): ("funding_rate", "NONE", 1, 0),
    ("GET", "/fapi/v1/income"): ("income", "SIGNED", 30, 0),
    ("POST", "/fapi/v1/order"): ("new_order", "SIGNED", 0, 1),
    ("PUT", "/fapi/v1/order"): ("amend_order", "SIGNED", 0, 1),
    ("DELETE", "/fapi/v1/order"): ("cancel_order", "SIGNED", 1, 0),
    ("GET", "/fapi/v1/order"): ("query_order", "SIGNED", 1, 0),
    ("GET", "/fapi/v1/openOrder"): ("open_order", "SIGNED", 1, 0),
    ("GET", "/fapi/v1/openOrders"): ("open_orders", "SIGNED", -1, 0),
    ("GET", "/fapi/v1/allOrders"): ("all_orders", "SIGNED", 5, 0),
    ("POST", "/fapi/v1/batchOrders"): ("batch_new", "SIGNED", 5, 5),
    ("PUT", "/fapi/v1/batchOrders"): ("batch_amend", "SIGNED", 5, 5),
    ("DELETE", "/fapi/v1/batchOrders"): ("batch_cancel", "SIGNED", 1, 0),
    ("DELETE", "/fapi/v1/allOpenOrders"): ("cancel_all", "SIGNED", 1, 0),
    ("POST", "/fapi/v1/countdownCancelAll"): ("countdown", "SIGNED", 10, 0),
    ("GET", "/fapi/v1/userTrades"): ("user_trades", "SIGNED", 5, 0),
    ("GET", "/fapi/v1/commissionRate"): ("commission_rate", "SIGNED", 20, 0),
    ("GET", "/fapi/v2/positionRisk"): ("position_risk_v2", "SIGNED", 5, 0),
    ("GET", "/fapi/v3/positionRisk"): ("position_risk_v3", "SIGNED", 5, 0),
    ("GET", "/fapi/v2/account"): ("account_v2", "SIGNED", 5, 0),
    ("GET", "/fapi/v3/account"): ("account_v3", "SIGNED", 5, 0),
    ("GET", "/fapi/v2/balance"): ("balance", "SIGNED", 5, 0),
    ("GET", "/fapi/v3/balance"): ("balance", "SIGNED", 5, 0),
    ("GET", "/fapi/v1/accountConfig"): ("account_config", "SIGNED", 5, 0),
    ("GET", "/fapi/v1/symbolConfig"): ("symbol_config", "SIGNED", 5, 0),
    ("POST", "/fapi/v1/leverage"): ("leverage", "SIGNED", 1, 0),
    ("POST", "/fapi/v1/marginType"): ("margin_type", "SIGNED", 1, 0),
    ("GET", "/fapi/v1/positionSide/dual"): ("get_dual", "SIGNED", 30, 0),
    ("POST", "/fapi/v1/positionSide/dual"): ("set_dual", "SIGNED", 1, 0),
    ("GET", "/fapi/v1/rateLimit/order"): ("rate_limit_order", "SIGNED", 1, 0),
    ("POST", "/fapi/v1/listenKey"): ("listen_key_new", "KEY", 1, 0),
    ("PUT", "/fapi/v1/listenKey"): ("listen_key_keepalive", "KEY", 1, 0),
    ("DELETE", "/fapi/v1/listenKey"): ("listen_key_close", "KEY", 1, 0),
}
#: the order endpoints whose fault can leave an order placed (or a cancel done)
ORDER_ENDPOINTS = {
    "new_order",
    "amend_order",
    "cancel_order",
    "batch_new",
    "batch_amend",
    "batch_cancel",
}

WS_METHODS: dict[str, tuple[str, str, int, int]] = {
    "order.place": ("new_order", "SIGNED", 0, 1),
    "order.modify": ("amend_order", "SIGNED", 1, 1),
    "order.cancel": ("cancel_order", "SIGNED", 1, 0),
    "order.status": ("query_order", "SIGNED", 1, 0),
    "account.position": ("position_risk_v3", "SIGNED", 5, 0),
    "v2/account.position": ("position_risk_v3", "SIGNED", 5, 0),
    "v2/account.balance": ("balance", "SIGNED", 5, 0),
    "v2/account.status": ("account_v3", "SIGNED", 5, 0),
    "userDataStream.start": ("listen_key_new", "KEY", 1, 0),
    "userDataStream.ping": ("listen_key_keepalive", "KEY", 1, 0),
    "userDataStream.stop": ("listen_key_close", "KEY", 1, 0),
    "depth": ("depth", "NONE", -1, 0),
    "ticker.book": ("book_ticker", "NONE", 2, 0),
}


def depth_weight(limit: int) -> int:
    if limit <= 50:
        return 2
    if limit <= 100:
        return 5
    if limit <= 500:
        return 10
    return 20


def klines_weight(limit: int) -> int:
    if limit < 100:
        return 1
    if limit < 500:
        return 2
    if limit <= 1000:
        return 5
    return 10
