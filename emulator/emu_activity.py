"""What event-sync endpoints leave in a project: custom events and purchases stored by id
(with the number of writes of each id), carts, device and browser tokens, email changes,
the types of event fields, and per-project settings (disallowed event names, answer shape,
body limits).

Pure data and rules, no HTTP (the handlers are in emu_events.py, emu_commerce.py and
emu_profiles.py). One Activity per project, created on first use and dropped by
/_emulator/reset (Project.clear() sets project.activity to None). Carts and tokens live
on the user's profile (User.data, under Iterable's own field names shoppingCartItems,
devices and browserTokens), so the admin users route shows them too.
"""

import re
import uuid

from emu_model import CONFLICT, NOT_FOUND, OK, _JSON_TYPE_NAMES, is_valid_email, \
    is_valid_user_id

# Iterable: an event or purchase id has only letters, digits and hyphens, at most 512 bytes.
_EVENT_ID_RE = re.compile(r"[A-Za-z0-9-]+")
EVENT_ID_MAX_BYTES = 512

MAX_DEVICES = 500           # per user (Iterable: 400 beyond)
MAX_BROWSER_TOKENS = 500
DEFAULT_BODY_LIMIT = 4 * 1024 * 1024

# Profile fields Iterable itself maintains; never typed in field_types.
SYSTEM_FIELDS = ("shoppingCartItems", "devices", "browserTokens")

BULK_SHAPES = ("spec", "recorded")

# Identity outcomes beyond emu_model's OK / NOT_FOUND / CONFLICT.
INVALID_EMAIL, INVALID_USER_ID, FORGOTTEN_EMAIL, FORGOTTEN_USER_ID = 10, 11, 12, 13


def event_id_problem(value):
    """None when value is an acceptable event/purchase id, else the reason."""
    if value == "":
        return "empty"
    if len(value.encode("utf-8")) > EVENT_ID_MAX_BYTES:
        return "longer than %d bytes" % EVENT_ID_MAX_BYTES
    if _EVENT_ID_RE.fullmatch(value) is None:
        return "only letters, digits and hyphens are allowed"
    return None


def generated_id():
    """An id like the ones Iterable generates (30 hex digits)."""
    return uuid.uuid4().hex[:30]


def json_type(value):
    return _JSON_TYPE_NAMES.get(type(value))


def type_mismatch(known, data, pending, prefix=""):
    """Check dataFields against the types in `known` (field -> type) plus `pending`
    (new fields of this request, a dict updated in place). Returns None or the first
    mismatch (field, expected, received, value)."""
    for name, value in data.items():
        type_name = json_type(value)
        if type_name is None:               # null carries no type
            continue
        field = prefix + name
        expected = known.get(field) or pending.get(field)
        if expected is None:
            pending[field] = type_name
        elif expected != type_name:
            return field, expected, type_name, value
        if type_name == "object":
            mismatch = type_mismatch(known, value, pending, field + ".")
            if mismatch is not None:
                return mismatch
    return None


def register_types(known, data, created, prefix=""):
    """Record the types of fields not seen before; their names go to `created`."""
    for name, value in data.items():
        type_name = json_type(value)
        if type_name is None:
            continue
        field = prefix + name
        if field not in known:
            known[field] = type_name
            created.append(field)
        if type_name == "object":
            register_types(known, value, created, field + ".")


class Settings:
    def __init__(self):
        self.disallowed_event_names = set()
        self.allow_new_event_names = True   # Iterable's "Allow New Custom Events" toggle
        self.track_bulk_shape = "spec"
        self.body_limits = {}               # endpoint -> bytes (DEFAULT_BODY_LIMIT otherwise)

    def body_limit(self, endpoint):
        return self.body_limits.get(endpoint, DEFAULT_BODY_LIMIT)

    def describe(self):
        return {"disallowed_event_names": sorted(self.disallowed_event_names),
                "allow_new_event_names": self.allow_new_event_names,
                "track_bulk_shape": self.track_bulk_shape,
                "body_limits": dict(self.body_limits), "default_body_limit": DEFAULT_BODY_LIMIT}


class Activity:
    """Events, purchases, cart updates, token registrations and email changes of one project."""

    def __init__(self):
        self.settings = Settings()
        self.events = {}            # id -> record (dict), in first-write order
        self.event_writes = {}      # id -> accepted writes
        self.purchases = {}
        self.purchase_writes = {}
        self.event_names = set()    # names tracked at least once
        self.event_field_types = {}     # eventName -> {field: type}
        self.purchase_field_types = {}
        self.cart_updates = []      # (seq, user, items)
        self.device_registrations = {}  # token -> count of accepted registrations
        self.browser_registrations = {}
        self.email_changes = []     # dicts
        self.seq = 0

    def next_seq(self):
        self.seq += 1
        return self.seq

    def is_disallowed(self, event_name):
        settings = self.settings
        if event_name in settings.disallowed_event_names:
            return True
        return not settings.allow_new_event_names and event_name not in self.event_names

    def store_event(self, record):
        event_id = record["id"]
        self.event_writes[event_id] = self.event_writes.get(event_id, 0) + 1
        self.events.pop(event_id, None)     # replaced: keep the order of the last write
        self.events[event_id] = record
        self.event_names.add(record["eventName"])

    def store_purchase(self, record):
        purchase_id = record["id"]
        self.purchase_writes[purchase_id] = self.purchase_writes.get(purchase_id, 0) + 1
        self.purchases.pop(purchase_id, None)
        self.purchases[purchase_id] = record


def activity_of(project):
    activity = getattr(project, "activity", None)
    if activity is None:
        activity = project.activity = Activity()
    return activity


# ----- identity for the event endpoints ----------------------------------------------------
def check_identifiers(project, email, user_id):
    """Format and GDPR checks: OK or one of the INVALID_* / FORGOTTEN_* outcomes."""
    if email is not None and not is_valid_email(email):
        return INVALID_EMAIL
    if user_id is not None and not is_valid_user_id(user_id):
        return INVALID_USER_ID
    if email is not None and email.lower() in project.forgotten_emails:
        return FORGOTTEN_EMAIL
    if user_id is not None and user_id in project.forgotten_user_ids:
        return FORGOTTEN_USER_ID
    return OK


def user_for_event(project, email, user_id):
    """(status, user) for a custom event: the user is matched or created per project type.

    No identity is changed by an event. In hybrid projects a request whose email and
    userId point at two users goes to the email's user (email is prioritized); an
    email-based project cannot create a user from a userId alone (events have no
    preferUserId) and a userId-based project cannot create one from an email alone:
    NOT_FOUND."""
    status = check_identifiers(project, email, user_id)
    if status != OK:
        return status, None
    email_key = email.lower() if email is not None else None
    if project.project_type == "hybrid" and email_key is not None:
        user = project.by_email.get(email_key)
        if user is not None:
            return OK, user
    status, user = project._resolve(email_key, user_id, False, False)
    if status == CONFLICT:                  # hybrid only, handled above
        return OK, project.by_email.get(email_key)
    if status != OK:
        return status, None
    if user is None:
        user = project._create(email_key, user_id)
    return OK, user


def user_for_update(project, email, user_id, prefer_user_id):
    """(status, user, apply) for the profile-updating endpoints (commerce, tokens): the
    rules of users/update (identity resolution as for list subscribe). Nothing changes
    until apply() is called; it creates the user or applies the identity update and
    returns the user."""
    status = check_identifiers(project, email, user_id)
    if status != OK:
        return status, None, None
    email_key = email.lower() if email is not None else None
    status, user = project._resolve(email_key, user_id, prefer_user_id, False)
    if status != OK:
        return status, None, None

    def apply():
        return project._upsert(user, email_key, user_id)

    return OK, user, apply


__all__ = ["Activity", "activity_of", "check_identifiers", "user_for_event", "user_for_update",
           "event_id_problem", "generated_id", "type_mismatch", "register_types", "json_type",
           "OK", "NOT_FOUND", "CONFLICT", "INVALID_EMAIL", "INVALID_USER_ID", "FORGOTTEN_EMAIL",
           "FORGOTTEN_USER_ID", "MAX_DEVICES", "MAX_BROWSER_TOKENS", "SYSTEM_FIELDS",
           "BULK_SHAPES", "EVENT_ID_MAX_BYTES"]
