"""Installs the event-sync endpoints into the App (handlers and routes) and their admin
routes under /_emulator/: events, purchases, carts, tokens, email changes, per-id write
counts and per-project event settings."""

from emu_activity import BULK_SHAPES, activity_of
from emu_admin import AdminError
from emu_commerce import CommerceHandlers
from emu_event_endpoints import ENDPOINTS
from emu_events import EventHandlers
from emu_profiles import ProfileHandlers


def _identity(user):
    return {"email": user.email, "userId": user.user_id}


def _record_json(record):
    out = {key: value for key, value in record.items() if key != "user"}
    out["profile"] = _identity(record["user"])
    return out


class EventAdmin:
    def __init__(self, app):
        self.app = app

    def _project(self, query):
        project = self.app.store.projects.get(query.get("api_key"))
        if project is None:
            raise AdminError(404, "unknown api_key %r" % (query.get("api_key"),))
        return project

    def events(self, request):
        query = request.query()
        activity = activity_of(self._project(query))
        out = []
        for record in activity.events.values():
            if any(query.get(key) not in (None, record.get(key))
                   for key in ("eventName", "id", "email", "userId")):
                continue
            entry = _record_json(record)
            entry["writes"] = activity.event_writes[record["id"]]
            out.append(entry)
        return {"events": out}

    def purchases(self, request):
        activity = activity_of(self._project(request.query()))
        out = []
        for record in activity.purchases.values():
            entry = _record_json(record)
            entry["writes"] = activity.purchase_writes[record["id"]]
            out.append(entry)
        return {"purchases": out}

    def carts(self, request):
        project = self._project(request.query())
        activity = activity_of(project)
        carts = [dict(_identity(user), items=user.data["shoppingCartItems"])
                 for user in project.all_users()
                 if user.data and "shoppingCartItems" in user.data]
        updates = [dict(_identity(user), seq=seq, items=items)
                   for seq, user, items in activity.cart_updates]
        return {"carts": carts, "updates": updates}

    def tokens(self, request):
        project = self._project(request.query())
        activity = activity_of(project)
        devices = []
        browser = []
        for user in project.all_users():
            data = user.data or {}
            for device in data.get("devices") or []:
                devices.append(dict(device, registrations=activity.device_registrations.get(
                    device["token"], 0), **_identity(user)))
            for token in data.get("browserTokens") or []:
                browser.append(dict(_identity(user), browserToken=token,
                                    registrations=activity.browser_registrations.get(token, 0)))
        return {"devices": devices, "browserTokens": browser}

    def email_changes(self, request):
        activity = activity_of(self._project(request.query()))
        return {"changes": list(activity.email_changes)}

    def writes(self, request):
        activity = activity_of(self._project(request.query()))
        return {
            "events": dict(activity.event_writes),
            "purchases": dict(activity.purchase_writes),
            "device_tokens": dict(activity.device_registrations),
            "browser_tokens": dict(activity.browser_registrations),
            "rewritten": {
                "events": sorted(k for k, n in activity.event_writes.items() if n > 1),
                "purchases": sorted(k for k, n in activity.purchase_writes.items() if n > 1)},
        }

    def get_settings(self, request):
        return {"settings": activity_of(self._project(request.query())).settings.describe()}

    def set_settings(self, request):
        body = self.app.admin._body(request)
        settings = activity_of(self._project(body)).settings
        unknown = set(body) - {"api_key", "disallowed_event_names", "allow_new_event_names",
                               "track_bulk_shape", "body_limits"}
        if unknown:
            raise AdminError(400, "unknown settings %s" % sorted(unknown))
        if "disallowed_event_names" in body:
            names = body["disallowed_event_names"]
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise AdminError(400, "disallowed_event_names must be a list of strings")
            settings.disallowed_event_names = set(names)
        if "allow_new_event_names" in body:
            if not isinstance(body["allow_new_event_names"], bool):
                raise AdminError(400, "allow_new_event_names must be a boolean")
            settings.allow_new_event_names = body["allow_new_event_names"]
        if "track_bulk_shape" in body:
            if body["track_bulk_shape"] not in BULK_SHAPES:
                raise AdminError(400, "track_bulk_shape must be one of %s"
                                 % ", ".join(BULK_SHAPES))
            settings.track_bulk_shape = body["track_bulk_shape"]
        if "body_limits" in body:
            limits = body["body_limits"]
            if not isinstance(limits, dict) or any(
                    name not in ENDPOINTS or isinstance(n, bool) or not isinstance(n, int)
                    or n < 1 for name, n in limits.items()):
                raise AdminError(400, "body_limits maps endpoint names (%s) to byte counts"
                                 % ", ".join(ENDPOINTS))
            settings.body_limits = dict(limits)
        return {"settings": settings.describe()}


def install(app):
    """Register the seven endpoints' handlers and the admin routes in `app`."""
    events, commerce, profiles = EventHandlers(app), CommerceHandlers(app), ProfileHandlers(app)
    app.handlers.update({
        "track": events.track, "track_bulk": events.track_bulk,
        "track_purchase": commerce.track_purchase, "update_cart": commerce.update_cart,
        "register_device_token": profiles.register_device_token,
        "register_browser_token": profiles.register_browser_token,
        "update_email": profiles.update_email,
    })
    admin = EventAdmin(app)
    app.admin.routes.update({
        ("GET", "/_emulator/events"): admin.events,
        ("GET", "/_emulator/purchases"): admin.purchases,
        ("GET", "/_emulator/carts"): admin.carts,
        ("GET", "/_emulator/tokens"): admin.tokens,
        ("GET", "/_emulator/email_changes"): admin.email_changes,
        ("GET", "/_emulator/writes"): admin.writes,
        ("GET", "/_emulator/event_settings"): admin.get_settings,
        ("POST", "/_emulator/event_settings"): admin.set_settings,
    })
