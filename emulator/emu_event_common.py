"""Shared request handling of the event-sync endpoints (emu_events, emu_commerce,
emu_profiles): JSON answers, Play-style BadJsonBody errors, type checks by JSON path, body
limits, and the answers for identity problems of the single-record endpoints."""

import json

from emu_activity import CONFLICT, FORGOTTEN_EMAIL, FORGOTTEN_USER_ID, INVALID_EMAIL, \
    INVALID_USER_ID, NOT_FOUND, activity_of
from emu_http import Response

JSON_CT = "application/json; charset=utf-8"


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"))


def reply(status, obj):
    return Response(status, dumps(obj).encode("utf-8"), JSON_CT)


def envelope(msg, code, params=None):
    return {"msg": msg, "code": code, "params": params}


def success(msg="", params=None):
    return reply(200, envelope(msg, "Success", params))


def _echoed_headers(request):
    # Iterable has echoed the request headers, the Api-Key with its value among them, in
    # the msg of a BadJsonBody (reference 10.8): so does the emulator, so that a client's
    # redaction can be tested.
    return ", ".join("%s: %s" % (name, value) for name, value in request.headers.items())


def bad_json_body(request, params, detail="Invalid JSON body"):
    msg = "[%s] %s. Request headers: %s" % (request.path, detail, _echoed_headers(request))
    return reply(400, envelope(msg, "BadJsonBody", params))


def path_error(msg):
    # The 2022 trackBulk recording has the message in a list: {"msg":["error..."],"args":[]}.
    return [{"msg": [msg], "args": []}]


class Checker:
    """Collects BadJsonBody errors keyed by JSON path (obj.events[0].eventName, ...)."""

    def __init__(self):
        self.errors = {}

    def fail(self, path, msg):
        self.errors.setdefault(path, path_error(msg))

    def _get(self, obj, key, path, required, expected):
        """(present, value); a required key that is absent or null is reported."""
        if key not in obj or obj[key] is None:
            if required:
                self.fail(path, "error.path.missing" if key not in obj else expected)
            return False, None
        return True, obj[key]

    def string(self, obj, key, path, required=False):
        present, value = self._get(obj, key, path, required, "error.expected.jsstring")
        if present and type(value) is not str:
            self.fail(path, "error.expected.jsstring")
            return None
        return value if present else None

    def number(self, obj, key, path, required=False):
        present, value = self._get(obj, key, path, required, "error.expected.jsnumber")
        if present and (type(value) is bool or not isinstance(value, (int, float))):
            self.fail(path, "error.expected.jsnumber")
            return None
        return value if present else None

    def integer(self, obj, key, path, required=False):
        """An int64 (Play reads 3.0 as 3 and refuses 3.5)."""
        present, value = self._get(obj, key, path, required, "error.expected.jsnumber")
        if not present:
            return None
        if type(value) is float and value.is_integer():
            value = int(value)
        if type(value) is not int:
            self.fail(path, "error.expected.jsnumber" if type(value) is not float
                      else "error.expected.long")
            return None
        if not -2 ** 63 <= value < 2 ** 63:
            self.fail(path, "error.expected.long")
            return None
        return value

    def boolean(self, obj, key, path, required=False):
        present, value = self._get(obj, key, path, required, "error.expected.jsboolean")
        if present and type(value) is not bool:
            self.fail(path, "error.expected.jsboolean")
            return None
        return value if present else None

    def object(self, obj, key, path, required=False):
        present, value = self._get(obj, key, path, required, "error.expected.jsobject")
        if present and type(value) is not dict:
            self.fail(path, "error.expected.jsobject")
            return None
        return value if present else None

    def array(self, obj, key, path, required=False):
        present, value = self._get(obj, key, path, required, "error.expected.jsarray")
        if present and type(value) is not list:
            self.fail(path, "error.expected.jsarray")
            return None
        return value if present else None

    def strings(self, obj, key, path):
        values = self.array(obj, key, path)
        if values is None:
            return None
        for index, value in enumerate(values):
            if type(value) is not str:
                self.fail("%s[%d]" % (path, index), "error.expected.jsstring")
        return values


def parse_items(check, items, path):
    """CommerceItem list: required id, name (strings), price (number), quantity (int64);
    optional sku, description, url, imageUrl (strings), categories (strings), dataFields."""
    out = []
    for index, item in enumerate(items):
        item_path = "%s[%d]" % (path, index)
        if type(item) is not dict:
            check.fail(item_path, "error.expected.jsobject")
            continue
        check.string(item, "id", item_path + ".id", True)
        check.string(item, "name", item_path + ".name", True)
        check.number(item, "price", item_path + ".price", True)
        check.integer(item, "quantity", item_path + ".quantity", True)
        for key in ("sku", "description", "url", "imageUrl"):
            check.string(item, key, "%s.%s" % (item_path, key))
        check.strings(item, "categories", item_path + ".categories")
        check.object(item, "dataFields", item_path + ".dataFields")
        out.append(item)
    return out


def read_body(app, request, endpoint, project):
    """(body dict, None) or (None, the error answer)."""
    limit = activity_of(project).settings.body_limit(endpoint)
    if len(request.body) > limit:
        app.stats.note_invalid(endpoint, "too_large", len(request.body),
                               detail={"limit": limit})
        return None, reply(413, envelope(
            "Request body of %d bytes exceeds the limit of %d bytes" % (len(request.body), limit),
            "BatchTooLarge"))
    try:
        body = json.loads(request.body)
    except (ValueError, UnicodeDecodeError) as exc:
        app.stats.note_invalid(endpoint, "bad_json_body", request.body[:200].decode(
            "utf-8", "replace"), detail=str(exc))
        return None, bad_json_body(request, None, "Invalid JSON body: %s" % exc)
    if type(body) is not dict:
        app.stats.note_invalid(endpoint, "bad_json_body", body, detail="not an object")
        return None, bad_json_body(request, {"obj": path_error("error.expected.jsobject")})
    return body, None


def reject_schema(app, request, endpoint, check):
    """The BadJsonBody answer when the checker found errors, else None."""
    if not check.errors:
        return None
    app.stats.note_invalid(endpoint, "bad_json_body", None, detail=check.errors)
    return bad_json_body(request, check.errors)


def no_identifier(what):
    return reply(400, envelope("Either email or userId must be set: %s" % what, "BadParams"))


def invalid_id(app, endpoint, value, reason):
    app.stats.note_invalid(endpoint, "invalid_ids", value, detail=reason)
    return reply(400, envelope("Invalid id %r: %s" % (value, reason), "BadParams",
                               {"id": value}))


def identity_error(app, endpoint, status, email, user_id, forgotten_status=409):
    """The answer of a single-record endpoint for an identity problem."""
    if status == INVALID_EMAIL:
        app.stats.note_invalid(endpoint, "emails", email)
        return reply(400, envelope("Invalid email: %s" % email, "InvalidEmailAddressError"))
    if status == INVALID_USER_ID:
        app.stats.note_invalid(endpoint, "userIds", user_id)
        return reply(400, envelope("Invalid userId: %s" % user_id, "InvalidUserIdError"))
    if status in (FORGOTTEN_EMAIL, FORGOTTEN_USER_ID):
        return reply(forgotten_status, envelope("Contact is GDPR forgotten",
                                                "ForgottenUserError"))
    if status == NOT_FOUND:
        if email is not None:
            return reply(400, envelope("No user exists with email %s" % email,
                                       "UnknownEmailError"))
        return reply(400, envelope("No user exists with userId %s" % user_id,
                                   "UnknownUserIdError"))
    if status == CONFLICT:
        return reply(409, envelope(
            "Email/userId conflict: %s and %s belong to different users" % (email, user_id),
            "UserIdAlreadyExists"))
    raise AssertionError("unexpected identity status %r" % status)


def types_mismatched(app, endpoint, request, project, category, mismatches):
    """400 RequestFieldsTypesMismatched; mismatches: [(field, expected, received, value)]."""
    errors = {}
    for field, expected, received, value in mismatches:
        errors[field] = {"incomingTypes": [received], "expectedType": expected,
                         "category": category, "offendingValue": value,
                         "_type": "UnexpectedType"}
        app.stats.note_invalid(endpoint, "data_type_mismatch", field,
                               detail={"field": field, "expectedType": expected,
                                       "incomingType": received, "category": category})
    return reply(400, envelope(
        "Project %d: The request does not have the same data types as the existing fields"
        % project.project_id, "RequestFieldsTypesMismatched", {"validationErrors": errors}))
