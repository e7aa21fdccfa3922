"""Names and routes of the event-sync endpoints (no imports: emu_faults and emu_app both
read these; the handlers are installed by emu_event_admin.install)."""

# (method, path) -> endpoint name (used in stats, fault rules and rate limits).
ROUTES = {
    ("POST", "/api/events/track"): "track",
    ("POST", "/api/events/trackBulk"): "track_bulk",
    ("POST", "/api/commerce/trackPurchase"): "track_purchase",
    ("POST", "/api/commerce/updateCart"): "update_cart",
    ("POST", "/api/users/registerDeviceToken"): "register_device_token",
    ("POST", "/api/users/registerBrowserToken"): "register_browser_token",
    ("POST", "/api/users/updateEmail"): "update_email",
}

ENDPOINTS = tuple(ROUTES.values())

# Iterable's documented per-project limits for these endpoints (reference section 5);
# commerce, registerBrowserToken and updateEmail have none stated.
REALISTIC_RATE_LIMITS = [
    {"endpoint": "track_bulk", "rate": 10, "burst": 10},
    {"endpoint": "track", "rate": 2000, "burst": 2000},
    {"endpoint": "register_device_token", "rate": 500, "burst": 500},
]
