"""Iterable's user update endpoints on top of the model (reference/iterable-api.md 3.1, 10):

    POST /api/users/update       one user: 200 {"msg":"","code":"Success","params":null}
    POST /api/users/bulkUpdate   {"users":[...]}: 200 UserBulkUpdateListResponse (as subscribe)

Identity per project type is the model's (Project._resolve, as for list subscribe): a userId alone
designates or creates a user except in email-based projects, where it needs an existing user or
preferUserId (which creates one with a placeholder email). dataFields are merged into the profile
(top-level fields replaced, objects merged field by field with mergeNestedObjects). A field whose
JSON type differs from the project's refuses the request as a whole (400
RequestFieldsTypesMismatched, params.validationErrors, nothing applied), as Iterable's schema
does. Per-user failures come back in the failedUpdates arrays of a 200. A bulkUpdate body over
4,000,000 bytes is refused (413 BatchTooLarge; Iterable documents "4MB" without saying which
unit or how it refuses, so this takes the smaller reading). The documented 5 req/s (bulkUpdate)
and 500 req/s (update) per project are installed by --realistic-rate-limits; faults and scripted
answers apply to both endpoints by their names below, as to the lists endpoints.

Registered by emu_app (routes, handlers) and emu_faults (endpoint names, realistic limits);
profiles show in GET /_emulator/users.
"""

import json

from emu_http import Response
from emu_model import CONFLICT, NOT_FOUND, OK, Outcome, _report_row

JSON_CT = "application/json; charset=utf-8"

ENDPOINTS = ("update_user", "bulk_update_users")
ROUTES = {("POST", "/api/users/update"): "update_user",
          ("POST", "/api/users/bulkUpdate"): "bulk_update_users"}
REALISTIC_RATE_LIMITS = [
    {"endpoint": "bulk_update_users", "rate": 5, "burst": 5},
    {"endpoint": "update_user", "rate": 500, "burst": 500},
]
MAX_BULK_BODY_BYTES = 4000000
# Iterable stores values up to about 32k characters (SUP-DSM); a longer string is invalid data.
MAX_VALUE_CHARS = 32768
_FLAGS = (("preferUserId", "error.expected.jsboolean", bool),
          ("mergeNestedObjects", "error.expected.jsboolean", bool))


def _reply(status, obj):
    return Response(status, json.dumps(obj, separators=(",", ":")).encode("utf-8"), JSON_CT)


def _envelope(msg, code, params=None):
    return {"msg": msg, "code": code, "params": params}


def _path_error(msg):
    return [{"msg": msg, "args": []}]


def _too_long(value):
    """True when a string value (at any depth) is longer than Iterable stores."""
    if type(value) is str:
        return len(value) > MAX_VALUE_CHARS
    if type(value) is dict:
        return any(_too_long(v) for v in value.values())
    if type(value) is list:
        return any(_too_long(v) for v in value)
    return False


class UserRow:
    __slots__ = ("email", "user_id", "data", "prefer_user_id", "merge_nested")

    def __init__(self, email, user_id, data, prefer_user_id, merge_nested):
        self.email = email
        self.user_id = user_id
        self.data = data
        self.prefer_user_id = prefer_user_id
        self.merge_nested = merge_nested


def parse_user(obj, path, errors):
    """A UserRow from one user object, or None; JSON type errors go into errors."""
    if type(obj) is not dict:
        errors[path] = _path_error("error.expected.jsobject")
        return None
    email, user_id, data = obj.get("email"), obj.get("userId"), obj.get("dataFields")
    if email is not None and type(email) is not str:
        errors[path + ".email"] = _path_error("error.expected.jsstring")
    if user_id is not None and type(user_id) is not str:
        errors[path + ".userId"] = _path_error("error.expected.jsstring")
    if data is not None and type(data) is not dict:
        errors[path + ".dataFields"] = _path_error("error.expected.jsobject")
    flags = []
    for key, message, kind in _FLAGS:
        value = obj.get(key)
        if value is not None and type(value) is not kind:
            errors[path + "." + key] = _path_error(message)
        flags.append(value is True)
    return UserRow(email, user_id, data, flags[0], flags[1])


class UsersApi:
    def __init__(self, app):
        self.app = app

    def handlers(self):
        return {"update_user": self.update_user, "bulk_update_users": self.bulk_update}

    # ----- shared checks ------------------------------------------------------------
    def _body(self, request, endpoint):
        """(body dict, None) or (None, 400 BadJsonBody)."""
        try:
            body = json.loads(request.body)
        except (ValueError, UnicodeDecodeError) as exc:
            self.app.stats.note_invalid(endpoint, "bad_json_body", None, detail=str(exc))
            return None, _reply(400, _envelope("[%s] Invalid JSON body" % request.path, "BadJsonBody"))
        if type(body) is not dict:
            self.app.stats.note_invalid(endpoint, "bad_json_body", None, detail="not an object")
            return None, _reply(400, _envelope("[%s] Invalid JSON body" % request.path, "BadJsonBody",
                                               {"obj": _path_error("error.expected.jsobject")}))
        return body, None

    def _bad_json(self, request, endpoint, errors):
        self.app.stats.note_invalid(endpoint, "bad_json_body", None, detail=errors)
        return _reply(400, _envelope("[%s] Invalid JSON body" % request.path, "BadJsonBody", errors))

    def _type_mismatches(self, project, rows, endpoint):
        """None when every row's dataFields agree with the project's field types (and with the
        rows before it), else the 400 RequestFieldsTypesMismatched refusing the request."""
        known = dict(project.field_types)
        saved = project.field_types
        validation = {}
        try:
            project.field_types = known     # _new_field_types reads project.field_types
            for row in rows:
                if not row.data:
                    continue
                pending = []
                mismatch = project._new_field_types(row.data, "", pending)
                if mismatch is not None:
                    field, expected, received = mismatch
                    validation.setdefault(field, {
                        "incomingTypes": [received], "expectedType": expected, "category": "user",
                        "offendingValue": _value_at(row.data, field), "_type": "UnexpectedType"})
                    self.app.stats.note_invalid(endpoint, "data_type_mismatch",
                                                row.email if row.email is not None else row.user_id,
                                                detail={"field": field, "expectedType": expected,
                                                        "incomingType": received})
                    continue
                for name, type_name in pending:
                    known.setdefault(name, type_name)
        finally:
            project.field_types = saved
        if not validation:
            return None
        return _reply(400, _envelope("Request fields types mismatched: %s" % ", ".join(sorted(validation)),
                                     "RequestFieldsTypesMismatched", {"validationErrors": validation}))

    def _apply(self, project, row, out, endpoint):
        """Apply one user; report a failure in out.failed. True when it succeeded."""
        failed = out.failed
        email, user_id = row.email, row.user_id
        note = self.app.stats.note_invalid

        def on_invalid(field, value):
            note(endpoint, "emails" if field == "email" else "userIds", value)

        if project._invalid_identifiers(email, user_id, failed, on_invalid):
            return False
        email_key = email.lower() if email is not None else None
        if project._forgotten(email_key, user_id, email, failed):
            return False
        status, user = project._resolve(email_key, user_id, row.prefer_user_id, False)
        if status == NOT_FOUND:
            _report_row(failed, "notFoundEmails", "notFoundUserIds", email, user_id)
            return False
        if status == CONFLICT:
            _report_row(failed, "conflictEmails", "conflictUserIds", email, user_id)
            return False
        if row.data and _too_long(row.data):
            _report_row(failed, "invalidDataEmails", "invalidDataUserIds", email, user_id)
            return False
        if row.data and not project._register_field_types(row.data, email, user_id, out):
            return False
        user = project._upsert(user, email_key, user_id)
        if row.data:
            project._merge(user, row.data, row.merge_nested)
        return True

    # ----- POST /api/users/bulkUpdate -----------------------------------------------
    def bulk_update(self, request, project, arg, notes):
        endpoint = "bulk_update_users"
        if len(request.body) > MAX_BULK_BODY_BYTES:
            notes["body_bytes"] = len(request.body)
            return _reply(413, _envelope("Request body of %d bytes exceeds the limit of %d bytes"
                                         % (len(request.body), MAX_BULK_BODY_BYTES), "BatchTooLarge"))
        body, error = self._body(request, endpoint)
        if error is not None:
            return error
        errors = {}
        users = body.get("users")
        if type(users) is not list:
            errors["obj.users"] = _path_error("error.path.missing" if "users" not in body
                                              else "error.expected.jsarray")
            users = []
        create_new = body.get("createNewFields")
        if create_new is not None and type(create_new) is not bool:
            errors["obj.createNewFields"] = _path_error("error.expected.jsboolean")
        rows = [parse_user(u, "obj.users[%d]" % i, errors) for i, u in enumerate(users)]
        if errors:
            return self._bad_json(request, endpoint, errors)
        if not rows:
            return _reply(400, _envelope("Emails invalid: ", "InvalidEmailAddressError"))
        missing = [i for i, row in enumerate(rows) if row.email is None and row.user_id is None]
        if missing:
            for index in missing:
                self.app.stats.note_invalid(endpoint, "missing_identifier", index)
            return _reply(400, _envelope("Either email or userId must be set: users%s"
                                         % "".join("[%d]" % i for i in missing[:10]), "BadParams",
                                         {"userIndexes": missing}))
        refused = self._type_mismatches(project, rows, endpoint)
        if refused is not None:
            return refused
        out = Outcome()
        for row in rows:
            if self._apply(project, row, out, endpoint):
                out.success += 1
            else:
                out.fail += 1
        notes["users"] = len(rows)
        notes["successCount"] = out.success
        notes["failCount"] = out.fail
        return _reply(200, out.to_json())

    # ----- POST /api/users/update ---------------------------------------------------
    def update_user(self, request, project, arg, notes):
        endpoint = "update_user"
        body, error = self._body(request, endpoint)
        if error is not None:
            return error
        errors = {}
        row = parse_user(body, "obj", errors)
        if errors:
            return self._bad_json(request, endpoint, errors)
        if row.email is None and row.user_id is None:
            self.app.stats.note_invalid(endpoint, "missing_identifier", 0)
            return _reply(400, _envelope("Either email or userId must be set", "BadParams"))
        refused = self._type_mismatches(project, [row], endpoint)
        if refused is not None:
            return refused
        out = Outcome()
        notes["users"] = 1
        if self._apply(project, row, out, endpoint):
            return _reply(200, _envelope("", "Success"))
        failed = out.failed
        if failed["invalidEmails"]:
            return _reply(400, _envelope("Invalid email: %s" % row.email, "InvalidEmailAddressError"))
        if failed["invalidUserIds"]:
            return _reply(400, _envelope("Invalid userId: %s" % row.user_id, "InvalidUserIdError"))
        if failed["forgottenEmails"] or failed["forgottenUserIds"]:
            return _reply(409, _envelope("Contact is GDPR forgotten", "GDPRForgotten"))
        if failed["conflictEmails"] or failed["conflictUserIds"]:
            return _reply(409, _envelope("Email/userId conflict", "ConflictError"))
        if failed["notFoundEmails"] or failed["notFoundUserIds"]:
            return _reply(400, _envelope("No user exists with userId %s" % row.user_id, "BadParams"))
        return _reply(400, _envelope("Invalid dataFields", "InvalidDataError"))


def _value_at(data, dotted):
    value = data
    for part in dotted.split("."):
        if type(value) is not dict:
            return None
        value = value.get(part)
    return value
