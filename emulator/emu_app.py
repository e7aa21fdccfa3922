"""Iterable's lists API on top of the model: routing, auth, request validation, rate limits
and fault responses. The admin API lives in emu_admin.py."""

import asyncio
import html
import json
import time
from itertools import repeat
from operator import add, is_not

from emu_admin import Admin
from emu_event_admin import install as install_event_endpoints
from emu_event_endpoints import ROUTES as EVENT_ROUTES
from emu_faults import Faults
from emu_http import DROP, DROP_PARTIAL, HANG, NORMAL, Response
from emu_model import Store
from emu_stats import Stats
from emu_users import ROUTES as USER_ROUTES, UsersApi

JSON_CT = "application/json; charset=utf-8"
TEXT_CT = "text/plain; charset=utf-8"
HTML_CT = "text/html; charset=utf-8"

RATE_LIMIT_TEXT = "Rate limit exceeded. Please try again later."

DEFAULT_PROJECTS = [
    {"api_key": "test-key-hybrid", "project_type": "hybrid", "project_id": 2158},
    {"api_key": "test-key-email", "project_type": "email", "project_id": 2159},
    {"api_key": "test-key-userid", "project_type": "user_id", "project_id": 2160},
]

_NOT_FOUND_PAGE = ("<!DOCTYPE html>\n<html><head><title>Action not found</title></head>"
                   "<body><h1>Action not found</h1><p>For request '%s %s'</p></body></html>\n")


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"))


def json_response(status, obj, headers=None):
    return Response(status, dumps(obj).encode("utf-8"), JSON_CT, headers)


def envelope(msg, code, params=None):
    return {"msg": msg, "code": code, "params": params}


def route(method, path):
    """(endpoint name, path argument) or (None, None)."""
    if path in ("/api/users/update", "/api/users/bulkUpdate"):
        return USER_ROUTES.get((method, path)), None
    event_endpoint = EVENT_ROUTES.get((method, path))     # emu_event_endpoints.py
    if event_endpoint is not None:
        return event_endpoint, None
    if not path.startswith("/api/lists"):
        return None, None
    if path == "/api/lists":
        if method == "GET":
            return "get_lists", None
        if method == "POST":
            return "create_list", None
    elif path == "/api/lists/subscribe":
        if method == "POST":
            return "subscribe", None
    elif path == "/api/lists/unsubscribe":
        if method == "POST":
            return "unsubscribe", None
    elif path == "/api/lists/getUsers":
        if method == "GET":
            return "get_users", None
    elif method == "DELETE" and path.startswith("/api/lists/"):
        tail = path[len("/api/lists/"):]
        if tail.isascii() and tail.isdigit():
            return "delete_list", int(tail)
    return None, None


def _path_error(msg):
    return [{"msg": msg, "args": []}]


def parse_subscribers(subscribers, full, errors):
    """Check JSON types of subscribers and flatten them to tuples.

    full: (email, userId, dataFields, preferUserId, mergeNestedObjects), else (email, userId).
    Type errors go into `errors` (BadJsonBody params). Returns (rows, indexes of subscribers
    with neither email nor userId).
    """
    rows = []
    missing = []
    append = rows.append
    for index, sub in enumerate(subscribers):
        if type(sub) is not dict:
            errors["obj.subscribers[%d]" % index] = _path_error("error.expected.jsobject")
            continue
        email = sub.get("email")
        user_id = sub.get("userId")
        size = len(sub)
        if full and (size == 1 and (type(email) is str or type(user_id) is str)
                     or size == 2 and type(email) is str and type(user_id) is str):
            append((email, user_id, None, False, False))    # hot path: identifiers only
            continue
        if email is None:
            if user_id is None:
                missing.append(index)
        elif type(email) is not str:
            errors["obj.subscribers[%d].email" % index] = _path_error("error.expected.jsstring")
        if user_id is not None and type(user_id) is not str:
            errors["obj.subscribers[%d].userId" % index] = _path_error("error.expected.jsstring")
        if not full:
            append((email, user_id))
            continue
        data = sub.get("dataFields")
        prefer = sub.get("preferUserId")
        merge = sub.get("mergeNestedObjects")
        if data is not None and type(data) is not dict:
            errors["obj.subscribers[%d].dataFields" % index] = _path_error(
                "error.expected.jsobject")
        if prefer is not None and type(prefer) is not bool:
            errors["obj.subscribers[%d].preferUserId" % index] = _path_error(
                "error.expected.jsboolean")
        if merge is not None and type(merge) is not bool:
            errors["obj.subscribers[%d].mergeNestedObjects" % index] = _path_error(
                "error.expected.jsboolean")
        append((email, user_id, data, prefer is True, merge is True))
    return rows, missing


_DICT = {dict}
_STR = {str}
_NONE = {type(None)}
_STR_OR_NONE = {str, type(None)}
_ONE = {1}
_TWO = {2}


def identifier_columns(subscribers):
    """(emails, user_ids, mixed) when every subscriber is an object whose only keys are
    "email" and/or "userId" with string values (the common request), else None.

    A column is a list with one entry per subscriber, or None when no subscriber has that
    key; mixed: some subscribers have only one of them (None in the other column). Built
    with C-level map() passes, no loop per subscriber; the rows are then what
    parse_subscribers() would return, with nothing to report.
    """
    if not subscribers or set(map(type, subscribers)) != _DICT:
        return None
    sizes = set(map(len, subscribers))
    emails = list(map(dict.get, subscribers, repeat("email")))
    email_types = set(map(type, emails))
    if sizes == _ONE and email_types == _STR:
        return emails, None, False
    user_ids = list(map(dict.get, subscribers, repeat("userId")))
    user_id_types = set(map(type, user_ids))
    if sizes == _ONE and email_types == _NONE and user_id_types == _STR:
        return None, user_ids, False
    if sizes == _TWO and email_types == _STR and user_id_types == _STR:
        return emails, user_ids, False
    if not (email_types <= _STR_OR_NONE and user_id_types <= _STR_OR_NONE) or 0 in sizes:
        return None
    # Mixed rows: each subscriber's keys must be exactly its (non-null) identifiers.
    present = list(map(add, map(is_not, emails, repeat(None)),
                       map(is_not, user_ids, repeat(None))))
    if present != list(map(len, subscribers)):
        return None
    return emails, user_ids, True


class App:
    def __init__(self, config=None, recent=200, bodies_per_endpoint=100):
        config = config or {}
        self.store = Store(config.get("first_list_id", 1001))
        self.stats = Stats(recent, bodies_per_endpoint)
        self.faults = Faults(config.get("faults"))
        self.admin = Admin(self)
        self._huge_bodies = {}
        for spec in config.get("projects") or DEFAULT_PROJECTS:
            self.admin.add_project(spec)
        self.handlers = {
            "get_lists": self.get_lists, "create_list": self.create_list,
            "delete_list": self.delete_list, "get_users": self.get_users,
            "subscribe": self.subscribe, "unsubscribe": self.unsubscribe,
        }
        self.handlers.update(UsersApi(self).handlers())
        install_event_endpoints(self)

    # ----- entry point --------------------------------------------------------------
    async def handle(self, request):
        path = request.path
        if path.startswith("/_emulator/"):
            return self.admin.handle(request)
        started = time.monotonic()
        headers = request.headers
        api_key = headers.get("api-key") or headers.get("api_key")
        endpoint, arg = route(request.method, path)
        if endpoint is None:
            page = _NOT_FOUND_PAGE % (html.escape(request.method), html.escape(path))
            self.stats.record(request, "not_found", api_key, 404, None, started, None)
            return Response(404, page, HTML_CT)
        delay, rule = self.faults.decide(endpoint, api_key)
        if delay > 0:
            await asyncio.sleep(delay)
        response = None
        fault = None
        if rule is not None:
            fault = rule.kind
            if fault == "hang":
                if rule.seconds is None:
                    self.stats.record(request, endpoint, api_key, 0, fault, started, None)
                    return Response(0, mode=HANG)
                await asyncio.sleep(rule.seconds)
            elif fault not in ("trickle", "drop_after_apply"):
                response = self.fault_response(rule)
        notes = None
        if response is None:
            notes = {}
            response = self.dispatch(endpoint, arg, request, api_key, notes)
            if fault == "drop_after_apply":     # applied, but the answer is lost
                response = Response(0, mode=DROP)
            elif fault == "trickle":
                response.trickle_bytes = rule.chunk_bytes
                response.trickle_interval = rule.interval_ms / 1000.0
        elif fault == "rate_limit":
            notes = {"rate_limited": True}
        status = response.status if response.mode == NORMAL else 0   # 0: no full answer
        self.stats.record(request, endpoint, api_key, status, fault, started, notes)
        return response

    def dispatch(self, endpoint, arg, request, api_key, notes):
        project = self.store.projects.get(api_key) if api_key else None
        if project is None:
            peer = request.peer[0] if request.peer else None
            return json_response(401, envelope("Invalid API key", "BadApiKey",
                                               {"ip": peer, "endpoint": request.path}))
        wait = self.faults.admit(endpoint, api_key)
        if wait is not None:
            notes["rate_limited"] = True
            return self.rate_limited(wait)
        return self.handlers[endpoint](request, project, arg, notes)

    # ----- canned responses ---------------------------------------------------------
    def rate_limited(self, wait):
        faults = self.faults
        retry_after = faults.retry_after_header(wait)
        headers = [("Retry-After", retry_after)] if retry_after is not None else None
        if faults.rate_limit_body == "json":
            return json_response(429, envelope("Rate limit exceeded", "RateLimitExceeded"),
                                 headers)
        return Response(429, RATE_LIMIT_TEXT, TEXT_CT, headers)

    def fault_response(self, rule):
        kind = rule.kind
        if kind == "error_500":
            return json_response(500, envelope("Internal server error", "GenericError"))
        if kind == "error_503":
            return json_response(503, envelope("Request timeout. Try again later.",
                                               "GenericError"))
        if kind == "rate_limit":
            return self.rate_limited(1.0)
        if kind == "drop":
            if rule.partial:
                return Response(200, b'{"successCount":', JSON_CT, mode=DROP_PARTIAL)
            return Response(0, mode=DROP)
        if kind == "malformed_json":
            return Response(200, rule.body, JSON_CT)
        if kind == "unexpected_shape":
            body = rule.body
            return Response(200, body if isinstance(body, str) else dumps(body), JSON_CT)
        if kind == "huge_body":
            body = self._huge_bodies.get(rule.size_bytes)
            if body is None:
                filler = b"x" * max(0, rule.size_bytes - len(b'{"padding":""}'))
                body = self._huge_bodies[rule.size_bytes] = b'{"padding":"' + filler + b'"}'
            return Response(rule.status, body, JSON_CT)
        # kind == "status"
        body = rule.body
        if isinstance(body, str):
            content_type = rule.content_type or TEXT_CT
        else:
            body = dumps(body)
            content_type = rule.content_type or JSON_CT
        return Response(rule.status, body, content_type, list(rule.headers.items()) or None)

    @staticmethod
    def bad_json_body(path, params, detail="Invalid JSON body"):
        return json_response(400, envelope("[%s] %s" % (path, detail), "BadJsonBody", params))

    def json_object(self, request, endpoint):
        """(body dict, None) or (None, 400 BadJsonBody response)."""
        try:
            body = json.loads(request.body)
        except (ValueError, UnicodeDecodeError) as exc:
            self.stats.note_invalid(endpoint, "bad_json_body", request.body[:200].decode(
                "utf-8", "replace"), detail=str(exc))
            return None, self.bad_json_body(request.path, None, "Invalid JSON body: %s" % exc)
        if type(body) is not dict:
            self.stats.note_invalid(endpoint, "bad_json_body", body, detail="not an object")
            return None, self.bad_json_body(request.path,
                                            {"obj": _path_error("error.expected.jsobject")})
        return body, None

    # ----- list endpoints -----------------------------------------------------------
    def get_lists(self, request, project, arg, notes):
        return json_response(200, {"lists": [lst.to_api_json()
                                             for lst in project.lists.values()]})

    def create_list(self, request, project, arg, notes):
        body, error = self.json_object(request, "create_list")
        if error is not None:
            return error
        errors = {}
        name = body.get("name")
        if name is None:
            errors["obj.name"] = _path_error(
                "error.path.missing" if "name" not in body else "error.expected.jsstring")
        elif type(name) is not str:
            errors["obj.name"] = _path_error("error.expected.jsstring")
        description = body.get("description")
        if description is not None and type(description) is not str:
            errors["obj.description"] = _path_error("error.expected.jsstring")
        if errors:
            self.stats.note_invalid("create_list", "bad_json_body", body, detail=errors)
            shown = request.body[:500].decode("utf-8", "replace")
            return self.bad_json_body(request.path, errors, "body: %s" % shown)
        lst = self.store.create_list(project, name, description)
        notes["listId"] = lst.id
        return json_response(200, {"listId": lst.id})

    def delete_list(self, request, project, list_id, notes):
        notes["listId"] = list_id
        if not self.store.delete_list(project, list_id):
            return json_response(400, envelope(
                "Unable to delete list %d in Project %d, which does not exist."
                % (list_id, project.project_id), "BadParams"))
        return json_response(200, envelope(
            "List %d in Project %d was successfully deleted." % (list_id, project.project_id),
            "Success"))

    def get_users(self, request, project, arg, notes):
        query = request.query()
        raw_id = query.get("listId", "")
        lst = None
        if raw_id.isascii() and raw_id.isdigit():
            lst = project.lists.get(int(raw_id))
        if lst is None:
            return json_response(400, envelope("Invalid email list id", "BadParams", {
                "projectId": str(project.project_id), "listId": raw_id}))
        prefer_user_id = query.get("preferUserId", "false").lower() == "true"
        notes["listId"] = lst.id
        return Response(200, project.list_identifiers(lst, prefer_user_id), TEXT_CT)

    def _list_id(self, body, errors):
        if "listId" not in body:
            errors["obj.listId"] = _path_error("error.path.missing")
            return None
        list_id = body["listId"]
        if type(list_id) is not int:
            errors["obj.listId"] = _path_error("error.expected.jsnumber")
            return None
        return list_id

    def _subscribers(self, body, full, errors):
        subscribers = body.get("subscribers")
        if subscribers is None:
            errors["obj.subscribers"] = _path_error(
                "error.path.missing" if "subscribers" not in body else "error.expected.jsarray")
            return [], []
        if type(subscribers) is not list:
            errors["obj.subscribers"] = _path_error("error.expected.jsarray")
            return [], []
        return parse_subscribers(subscribers, full, errors)

    def _active_list(self, project, list_id):
        lst = project.lists.get(list_id)
        grace = self.faults.new_list_invalid_seconds
        if lst is not None and grace and time.monotonic() - lst.created_mono < grace:
            return None
        return lst

    def _reject(self, request, endpoint, errors, missing, list_id):
        """400 for a schema error or a subscriber without identifier, else None."""
        if errors:
            self.stats.note_invalid(endpoint, "bad_json_body", None, list_id, detail=errors)
            return self.bad_json_body(request.path, errors)
        if missing:
            for index in missing:
                self.stats.note_invalid(endpoint, "missing_identifier", index, list_id)
            return json_response(400, envelope(
                "Either email or userId must be set: subscribers%s"
                % "".join("[%d]" % i for i in missing[:10]), "BadParams",
                {"subscriberIndexes": missing}))
        return None

    def _invalid_list(self, project, list_id):
        return json_response(400, envelope(
            "Invalid list id %d in Project %d: error.lists.invalidListId"
            % (list_id, project.project_id), "BadParams", {"listId": list_id}))

    def _finish(self, endpoint, list_id, outcome, count, notes):
        for identifier, field, expected, received in outcome.mismatches:
            self.stats.note_invalid(endpoint, "data_type_mismatch", identifier, list_id,
                                    detail={"field": field, "expectedType": expected,
                                            "incomingType": received})
        notes["listId"] = list_id
        notes["subscribers"] = count
        notes["successCount"] = outcome.success
        notes["failCount"] = outcome.fail
        return json_response(200, outcome.to_json())

    def subscribe(self, request, project, arg, notes):
        body, error = self.json_object(request, "subscribe")
        if error is not None:
            return error
        errors = {}
        list_id = self._list_id(body, errors)
        subscribers = body.get("subscribers")
        columns = identifier_columns(subscribers) if type(subscribers) is list else None
        if columns is None:
            rows, missing = self._subscribers(body, True, errors)
            count = len(rows)
        else:
            missing = None
            count = len(subscribers)
        existing_only = body.get("updateExistingUsersOnly")
        if existing_only is not None and type(existing_only) is not bool:
            errors["obj.updateExistingUsersOnly"] = _path_error("error.expected.jsboolean")
        rejected = self._reject(request, "subscribe", errors, missing, list_id)
        if rejected is not None:
            return rejected
        lst = self._active_list(project, list_id)
        if lst is None:
            return self._invalid_list(project, list_id)
        note_invalid = self.stats.note_invalid

        def on_invalid(field, value):
            note_invalid("subscribe", "emails" if field == "email" else "userIds", value,
                         list_id)

        if columns is None:
            outcome = project.subscribe(lst, rows, existing_only is True, on_invalid)
        else:
            emails, user_ids, mixed = columns
            outcome = project.subscribe_ids(lst, emails, user_ids, mixed, existing_only is True,
                                            on_invalid)
        for due in self.faults.lists_to_delete(project.api_key, list_id):
            self.store.delete_list(project, due)
        return self._finish("subscribe", list_id, outcome, count, notes)

    def unsubscribe(self, request, project, arg, notes):
        body, error = self.json_object(request, "unsubscribe")
        if error is not None:
            return error
        self.stats.note_unsubscribe_flags(body)
        errors = {}
        list_id = self._list_id(body, errors)
        subscribers = body.get("subscribers")
        columns = identifier_columns(subscribers) if type(subscribers) is list else None
        if columns is None:
            rows, missing = self._subscribers(body, False, errors)
        else:
            missing = None
            emails, user_ids, _ = columns
            rows = list(zip(emails or repeat(None), user_ids or repeat(None)))
        campaign_id = body.get("campaignId")
        if campaign_id is not None and type(campaign_id) is not int:
            errors["obj.campaignId"] = _path_error("error.expected.jsnumber")
        channel = body.get("channelUnsubscribe")
        if channel is not None and type(channel) is not bool:
            errors["obj.channelUnsubscribe"] = _path_error("error.expected.jsboolean")
        rejected = self._reject(request, "unsubscribe", errors, missing, list_id)
        if rejected is not None:
            return rejected
        lst = self._active_list(project, list_id)
        if lst is None:
            return self._invalid_list(project, list_id)
        note_invalid = self.stats.note_invalid

        def on_invalid(field, value):
            note_invalid("unsubscribe", "emails" if field == "email" else "userIds", value,
                         list_id)

        outcome = project.unsubscribe(lst, rows, on_invalid)
        return self._finish("unsubscribe", list_id, outcome, len(rows), notes)
