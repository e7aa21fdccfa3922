"""Iterable project model: users, static lists and the subscribe/unsubscribe rules.

Pure data and rules, no HTTP. See emulator/README.md ("Semantics") for the choices made
where Iterable's behaviour is not documented.
"""

import hashlib
import re
import time
from itertools import compress
from operator import not_

# One "@", non-empty local part, a domain of non-empty dot-separated labels with at least one
# dot, no whitespace or control characters anywhere. (Possessive quantifiers: the classes
# exclude the separators, so backtracking can never help; they halve the matching time.)
_EMAIL_PATTERN = (
    r"[^@\s\x00-\x1f\x7f]++@(?:[^@\s\x00-\x1f\x7f.]++\.)++[^@\s\x00-\x1f\x7f.]++")
_EMAIL_RE = re.compile(_EMAIL_PATTERN)
# 1..52 printable ASCII characters, no leading or trailing space.
_USER_ID_PATTERN = r"[\x21-\x7e](?:[\x20-\x7e]{0,50}[\x21-\x7e])?"
_USER_ID_RE = re.compile(_USER_ID_PATTERN)
# Many identifiers joined by "\n" (which neither pattern accepts): one regex run checks a
# whole request's identifiers (see _all_valid). The outer repeat must not be possessive:
# Python 3.11.2's re wrongly fails "(?:(?:a)++b)*+"-like nestings.
_EMAILS_RE = re.compile(r"(?:%s\n)*%s" % (_EMAIL_PATTERN, _EMAIL_PATTERN))
# The same for ASCII text, where it is three times faster: classes of plain ranges (bitmaps).
# [!-?A-~] is 0x21-0x7e without "@": no space, control character or DEL; the domain class
# [!-\-/-?A-~] also excludes ".".
_ASCII_EMAIL_PATTERN = r"[!-?A-~]++@(?:[!-\-/-?A-~]++\.)++[!-\-/-?A-~]++"
_ASCII_EMAILS_RE = re.compile(r"(?:%s\n)*%s" % (_ASCII_EMAIL_PATTERN, _ASCII_EMAIL_PATTERN))
# userIds: the same language as _USER_ID_PATTERN (first and last character not a space, at
# most 52), written without backtracking: four times faster.
_BULK_USER_ID_PATTERN = r"[!-~][ -~]{0,51}+(?<! )"
_USER_IDS_RE = re.compile(r"(?:%s\n)*%s" % (_BULK_USER_ID_PATTERN, _BULK_USER_ID_PATTERN))
USER_ID_MAX = 52

PROJECT_TYPES = ("email", "user_id", "hybrid")
_PROJECT_TYPE_ALIASES = {
    "email": "email", "email-based": "email", "email_based": "email",
    "user_id": "user_id", "userid": "user_id", "userId": "user_id", "user-id": "user_id",
    "userid-based": "user_id", "userId-based": "user_id", "user_id_based": "user_id",
    "hybrid": "hybrid",
}

FAILED_KEYS = (
    "invalidEmails", "invalidUserIds", "notFoundEmails", "notFoundUserIds",
    "forgottenEmails", "forgottenUserIds", "conflictEmails", "conflictUserIds",
    "invalidDataEmails", "invalidDataUserIds",
)

PLACEHOLDER_DOMAIN = "placeholder.email"

_JSON_TYPE_NAMES = {str: "string", bool: "boolean", int: "number", float: "number",
                    dict: "object", list: "array"}

# Outcomes of resolving a subscriber to a user.
OK, NOT_FOUND, CONFLICT = 0, 1, 2


def is_valid_email(value):
    return type(value) is str and _EMAIL_RE.fullmatch(value) is not None


def is_valid_user_id(value):
    return type(value) is str and _USER_ID_RE.fullmatch(value) is not None


def _all_valid(values, emails):
    """True when every string in values is a valid email (emails true) or userId (False
    also when unsure: then check each).

    One regex run over the values joined with "\n", which no valid identifier contains (a
    value containing one is caught by counting them)."""
    joined = "\n".join(values)
    if joined.count("\n") != len(values) - 1:
        return False
    if emails:
        bulk = _ASCII_EMAILS_RE if joined.isascii() else _EMAILS_RE
    else:
        bulk = _USER_IDS_RE
    return bulk.fullmatch(joined) is not None


def normalize_project_type(value):
    project_type = _PROJECT_TYPE_ALIASES.get(value) if isinstance(value, str) else None
    if project_type is None:
        raise ValueError("project_type must be one of email, user_id, hybrid; got %r" % (value,))
    return project_type


def now_ms():
    return int(time.time() * 1000)


class User:
    __slots__ = ("email", "user_id", "data")

    def __init__(self, email, user_id):
        self.email = email          # lower-cased, or None
        self.user_id = user_id      # as sent (case-sensitive), or None
        self.data = None            # dataFields dict, or None when never set

    def to_json(self):
        return {"email": self.email, "userId": self.user_id, "dataFields": self.data or {}}


class UniqueIndex(dict):
    """identifier -> the one user holding it (dict.get is the lookup)."""

    def add(self, key, user):
        self[key] = user

    def discard(self, key, user):
        if self.get(key) is user:
            del self[key]

    def users(self):
        return self.values()


class MultiIndex:
    """identifier -> users holding it, oldest first; get() returns the first one.

    A key held by one user maps to that user, by several to a list of them (no list per
    user in the common case). add() only logs (key, user) in two lists; any other use
    applies the log first, in order. So a user_id project's email index, which only
    single-identifier email rows read, costs a list append per new user until then."""

    __slots__ = ("_users", "pending_keys", "pending_users")

    def __init__(self):
        self._users = {}
        self.pending_keys = []      # add() log, applied by _apply_pending(); these two
        self.pending_users = []     # lists are never replaced

    def _apply_pending(self):
        keys, added = self.pending_keys, self.pending_users
        users = self._users
        held_by = users.get
        for key, user in zip(keys, added):
            held = held_by(key)
            if held is None:
                users[key] = user
            elif type(held) is list:
                held.append(user)
            else:
                users[key] = [held, user]
        keys.clear()                # in place: callers may hold their append methods
        added.clear()

    def get(self, key):
        if self.pending_keys:
            self._apply_pending()
        users = self._users.get(key)
        if type(users) is list:
            return users[0]
        return users

    def add(self, key, user):
        self.pending_keys.append(key)
        self.pending_users.append(user)

    def discard(self, key, user):
        if self.pending_keys:
            self._apply_pending()
        users = self._users
        held = users.get(key)
        if held is user:
            del users[key]
        elif type(held) is list and user in held:
            held.remove(user)
            if len(held) == 1:
                users[key] = held[0]

    def users(self):
        if self.pending_keys:
            self._apply_pending()
        for held in self._users.values():
            if type(held) is list:
                yield from held
            else:
                yield held


class StaticList:
    __slots__ = ("id", "name", "description", "created_at", "created_mono", "members")

    def __init__(self, list_id, name, description):
        self.id = list_id
        self.name = name
        self.description = description
        self.created_at = now_ms()
        self.created_mono = time.monotonic()
        self.members = {}           # User -> None, in subscription order

    def to_api_json(self):
        out = {"id": self.id, "name": self.name, "createdAt": self.created_at,
               "listType": "Standard"}
        if self.description is not None:
            out["description"] = self.description
        return out


class Outcome:
    """Per-request result of subscribe/unsubscribe, rendered as Iterable's response."""

    __slots__ = ("success", "fail", "failed", "created_fields", "mismatches")

    def __init__(self):
        self.success = 0
        self.fail = 0
        self.failed = {key: [] for key in FAILED_KEYS}
        self.created_fields = []
        self.mismatches = []        # (identifier, field, expected type, received type)

    def to_json(self):
        return {"successCount": self.success, "failCount": self.fail,
                "failedUpdates": self.failed, "createdFields": self.created_fields,
                "filteredOutFields": []}


def _report_row(arrays, email_key, user_id_key, email, user_id):
    """Report a row-level failure under every identifier the row carried."""
    if email is not None:
        arrays[email_key].append(email)
    if user_id is not None:
        arrays[user_id_key].append(user_id)


class Project:
    """One Iterable project: its users, lists, field types and forgotten identifiers."""

    def __init__(self, api_key, project_type, project_id, name=None):
        self.api_key = api_key
        self.project_type = normalize_project_type(project_type)
        self.project_id = int(project_id)
        self.name = name
        self.clear()

    def clear(self):
        email_unique = self.project_type != "user_id"
        user_id_unique = self.project_type != "email"
        self.by_email = UniqueIndex() if email_unique else MultiIndex()
        self.by_user_id = UniqueIndex() if user_id_unique else MultiIndex()
        self.user_count = 0
        self.lists = {}
        self.field_types = {}
        self.forgotten_emails = set()
        self.forgotten_user_ids = set()
        self.activity = None        # event-sync state, created on use (emu_activity.py)

    # ----- descriptions -------------------------------------------------------------
    def describe(self):
        return {
            "api_key": self.api_key, "project_type": self.project_type,
            "project_id": self.project_id, "name": self.name, "users": self.user_count,
            "field_types": dict(self.field_types),
            "forgotten": {"emails": sorted(self.forgotten_emails),
                          "userIds": sorted(self.forgotten_user_ids)},
            "lists": [dict(lst.to_api_json(), members=len(lst.members))
                      for lst in self.lists.values()],
        }

    def all_users(self):
        """Every user once: those with a userId, then those with only an email."""
        yield from self.by_user_id.users()
        for user in self.by_email.users():
            if user.user_id is None:
                yield user

    def find_users(self, email=None, user_id=None):
        """Users matching every given identifier (email case-insensitively)."""
        email = email.lower() if email is not None else None
        return [user for user in self.all_users()
                if (email is None or user.email == email)
                and (user_id is None or user.user_id == user_id)]

    # ----- lists --------------------------------------------------------------------
    def list_identifiers(self, lst, prefer_user_id):
        """getUsers body: one identifier per line, trailing newline; empty list -> ''."""
        lines = []
        for user in lst.members:
            if user.email is None or (prefer_user_id and user.user_id is not None):
                lines.append(user.user_id)
            else:
                lines.append(user.email)
        return "\n".join(lines) + "\n" if lines else ""

    # ----- identity -----------------------------------------------------------------
    def _resolve(self, email, user_id, prefer_user_id, existing_only):
        """Find the user a subscriber designates, without changing anything.

        Returns (OK, user) -- user None means "create one" --, (NOT_FOUND, None) or
        (CONFLICT, None).
        """
        project_type = self.project_type
        if project_type == "hybrid":
            by_email = self.by_email.get(email) if email is not None else None
            by_user_id = self.by_user_id.get(user_id) if user_id is not None else None
            if by_email is not None:
                if by_user_id is not None:
                    return (OK, by_email) if by_email is by_user_id else (CONFLICT, None)
                if user_id is not None and by_email.user_id is not None:
                    return CONFLICT, None       # the email's user has another userId
                return OK, by_email
            if by_user_id is not None:
                return OK, by_user_id           # email (if any) is free: it gets updated
            return (NOT_FOUND, None) if existing_only else (OK, None)
        if project_type == "email":             # updateExistingUsersOnly is ignored
            if email is not None:
                return OK, self.by_email.get(email)
            user = self.by_user_id.get(user_id)
            if user is not None or prefer_user_id:
                return OK, user
            return NOT_FOUND, None
        # user_id project: email is only a profile field
        if user_id is not None:
            user = self.by_user_id.get(user_id)
            if user is None and existing_only:
                return NOT_FOUND, None
            return OK, user
        user = self.by_email.get(email)
        return (OK, user) if user is not None else (NOT_FOUND, None)

    def _find(self, email, user_id):
        """Unsubscribe lookup: (OK, user or None) or (CONFLICT, None)."""
        project_type = self.project_type
        if project_type == "hybrid":
            by_email = self.by_email.get(email) if email is not None else None
            by_user_id = self.by_user_id.get(user_id) if user_id is not None else None
            if by_email is not None and by_user_id is not None and by_email is not by_user_id:
                return CONFLICT, None
            return OK, by_email or by_user_id
        if project_type == "email":
            if email is not None:
                return OK, self.by_email.get(email)
            return OK, self.by_user_id.get(user_id)
        if user_id is not None:
            return OK, self.by_user_id.get(user_id)
        return OK, self.by_email.get(email)

    def _placeholder_email(self, user_id):
        base = hashlib.md5(user_id.encode("utf-8")).hexdigest()
        email = "%s@%s" % (base, PLACEHOLDER_DOMAIN)
        suffix = 1
        while self.by_email.get(email) is not None:
            suffix += 1
            email = "%s-%d@%s" % (base, suffix, PLACEHOLDER_DOMAIN)
        return email

    def _set_email(self, user, email):
        if user.email is not None:
            self.by_email.discard(user.email, user)
        user.email = email
        self.by_email.add(email, user)

    def _set_user_id(self, user, user_id):
        if user.user_id is not None:
            self.by_user_id.discard(user.user_id, user)
        user.user_id = user_id
        self.by_user_id.add(user_id, user)

    def _create(self, email, user_id):
        if email is None and self.project_type == "email":
            email = self._placeholder_email(user_id)
        user = User(email, user_id)
        if email is not None:
            self.by_email.add(email, user)
        if user_id is not None:
            self.by_user_id.add(user_id, user)
        self.user_count += 1
        return user

    def _upsert(self, user, email, user_id):
        """Create the user (user None) or apply the identity updates a subscriber implies."""
        if user is None:
            return self._create(email, user_id)
        project_type = self.project_type
        if project_type == "email":             # email wins: the userId is overwritten
            if email is not None and user_id is not None and user.user_id != user_id:
                self._set_user_id(user, user_id)
        elif project_type == "user_id":         # email is a plain field
            if email is not None and user.email != email:
                self._set_email(user, email)
        else:                                   # hybrid: _resolve checked both are free
            if email is not None and user.email != email:
                self._set_email(user, email)
            if user_id is not None and user.user_id is None:
                self._set_user_id(user, user_id)
        return user

    def delete_user(self, user):
        if user.email is not None:
            self.by_email.discard(user.email, user)
        if user.user_id is not None:
            self.by_user_id.discard(user.user_id, user)
        for lst in self.lists.values():
            lst.members.pop(user, None)
        self.user_count -= 1

    # ----- dataFields ---------------------------------------------------------------
    def _new_field_types(self, data, prefix, pending):
        """Collect (name, type) of fields not seen before into pending.

        Returns None when all types agree with the project, else the first mismatch as
        (field, expected, received).
        """
        known_types = self.field_types
        for name, value in data.items():
            type_name = _JSON_TYPE_NAMES.get(type(value))
            if type_name is None:               # null: carries no type
                continue
            field = prefix + name if prefix else name
            known = known_types.get(field)
            if known is None:
                pending.append((field, type_name))
            elif known != type_name:
                return field, known, type_name
            if type_name == "object":
                mismatch = self._new_field_types(value, field + ".", pending)
                if mismatch is not None:
                    return mismatch
        return None

    @staticmethod
    def _merge(user, data, merge_nested):
        profile = user.data
        if profile is None:
            user.data = dict(data)
        elif merge_nested:
            for name, value in data.items():
                old = profile.get(name)
                if type(value) is dict and type(old) is dict:
                    profile[name] = {**old, **value}
                else:
                    profile[name] = value
        else:
            profile.update(data)

    # ----- admin helpers ------------------------------------------------------------
    def upsert_user(self, email, user_id, data):
        """Admin pre-creation: returns 'created', 'updated' or a failure reason."""
        if email is not None and not is_valid_email(email):
            return "invalid email"
        if user_id is not None and not is_valid_user_id(user_id):
            return "invalid userId"
        if email is None and user_id is None:
            return "email or userId required"
        email_key = email.lower() if email is not None else None
        status, user = self._resolve(email_key, user_id, True, False)
        if status == CONFLICT:
            return "conflict"
        if status == NOT_FOUND:
            return "not found (userId-only user needs an existing email match)"
        if data:
            pending = []
            mismatch = self._new_field_types(data, "", pending)
            if mismatch is not None:
                return "dataFields type mismatch on %s: expected %s, got %s" % mismatch
            for field, type_name in pending:
                self.field_types.setdefault(field, type_name)
        created = user is None
        user = self._upsert(user, email_key, user_id)
        if data:
            self._merge(user, data, False)
        return ("created", user) if created else ("updated", user)

    def forget(self, emails, user_ids):
        """GDPR-forget: block the identifiers and delete the users holding them."""
        deleted = 0
        for email in emails:
            key = email.lower()
            self.forgotten_emails.add(key)
            deleted += self._forget_users(self.by_email, key)
        for user_id in user_ids:
            self.forgotten_user_ids.add(user_id)
            deleted += self._forget_users(self.by_user_id, user_id)
        return deleted

    def _forget_users(self, index, key):
        deleted = 0
        user = index.get(key)
        while user is not None:
            # In the project's unique identifiers, the counterpart is forgotten too.
            if user.email is not None and self.project_type != "user_id":
                self.forgotten_emails.add(user.email)
            if user.user_id is not None and self.project_type != "email":
                self.forgotten_user_ids.add(user.user_id)
            self.delete_user(user)
            deleted += 1
            user = index.get(key)
        return deleted

    # ----- the two bulk operations ------------------------------------------------------
    def _invalid_identifiers(self, email, user_id, failed, on_invalid):
        """Format-check the identifiers of a row; report and return True when one is bad."""
        bad = False
        if email is not None and _EMAIL_RE.fullmatch(email) is None:
            failed["invalidEmails"].append(email)
            on_invalid("email", email)
            bad = True
        if user_id is not None and _USER_ID_RE.fullmatch(user_id) is None:
            failed["invalidUserIds"].append(user_id)
            on_invalid("userId", user_id)
            bad = True
        return bad

    def _forgotten(self, email_key, user_id, email, failed):
        """Report and return True when an identifier of the row was GDPR-forgotten."""
        bad = False
        if email_key is not None and email_key in self.forgotten_emails:
            failed["forgottenEmails"].append(email)
            bad = True
        if user_id is not None and user_id in self.forgotten_user_ids:
            failed["forgottenUserIds"].append(user_id)
            bad = True
        return bad

    def subscribe(self, lst, rows, existing_only, on_invalid):
        """rows: (email, userId, dataFields, preferUserId, mergeNestedObjects) tuples whose
        JSON types were already checked. on_invalid(field, value) is told every invalid
        identifier. Returns an Outcome."""
        out = Outcome()
        failed = out.failed
        members = lst.members
        has_forgotten = bool(self.forgotten_emails or self.forgotten_user_ids)
        by_email_get = self.by_email.get
        by_user_id_get = self.by_user_id.get
        success = fail = 0
        for email, user_id, data, prefer_user_id, merge_nested in rows:
            # Hot path: with a single identifier, every project type designates the user
            # holding it, with no identity update; stored identifiers are valid, so a hit
            # needs no format check.
            if user_id is None:
                email_key = email.lower()
                user = by_email_get(email_key)
            elif email is None:
                email_key = None
                user = by_user_id_get(user_id)
            else:
                email_key = email.lower()
                user = None
            if user is None and self._invalid_identifiers(email, user_id, failed, on_invalid):
                fail += 1
                continue
            if has_forgotten and self._forgotten(email_key, user_id, email, failed):
                fail += 1
                continue
            is_new_identity = user is None
            if is_new_identity:
                status, user = self._resolve(email_key, user_id, prefer_user_id, existing_only)
                if status != OK:
                    fail += 1
                    if status == NOT_FOUND:
                        _report_row(failed, "notFoundEmails", "notFoundUserIds", email, user_id)
                    else:
                        _report_row(failed, "conflictEmails", "conflictUserIds", email, user_id)
                    continue
            if data and not self._register_field_types(data, email, user_id, out):
                fail += 1
                continue
            if is_new_identity:
                if user is None:
                    user = self._create(email_key, user_id)
                else:
                    user = self._upsert(user, email_key, user_id)
            if data:
                self._merge(user, data, merge_nested)
            members[user] = None
            success += 1
        out.success = success
        out.fail = fail
        return out

    # Identifier-only rows (no dataFields, preferUserId or mergeNestedObjects), as columns:
    # the same rules as subscribe(), with the common cases inlined.
    def subscribe_ids(self, lst, emails, user_ids, mixed, existing_only, on_invalid):
        """subscribe() of rows that carry only identifiers. emails, user_ids: one entry per
        row, or None for a column no row has; mixed: some rows lack one of the identifiers
        (None in that column). Every row has at least one identifier. Returns an Outcome."""
        if user_ids is None:
            return self._subscribe_one_id(lst, emails, True, existing_only, on_invalid)
        if emails is None:
            return self._subscribe_one_id(lst, user_ids, False, existing_only, on_invalid)
        return self._subscribe_pairs(lst, emails, user_ids, mixed, existing_only, on_invalid)

    def _subscribe_one_id(self, lst, values, is_email, existing_only, on_invalid):
        """Every row has the same one identifier: an email (is_email) or a userId."""
        out = Outcome()
        failed = out.failed
        members = lst.members
        project_type = self.project_type
        # _resolve() of an unknown identifier, without preferUserId: an email creates the
        # user in email projects, and in hybrid ones unless updateExistingUsersOnly; a userId
        # in hybrid and user_id projects unless updateExistingUsersOnly. (Both create into
        # a UniqueIndex.) Otherwise the row is not found.
        if is_email:
            index = self.by_email
            keys = list(map(str.lower, values))
            forgotten = self.forgotten_emails
            creates = project_type == "email" or (project_type == "hybrid" and not existing_only)
            field, suffix = "email", "Emails"
        else:
            index = self.by_user_id
            keys = values
            forgotten = self.forgotten_user_ids
            creates = project_type != "email" and not existing_only
            field, suffix = "userId", "UserIds"
        get = index.get
        found = list(map(get, keys))
        valid = recheck = False
        if not all(found):                  # (a User is always true)
            # A known identifier was valid when stored: only the unknown ones need the
            # format check, and one regex run over all of them usually settles it.
            valid = _all_valid(list(compress(values, map(not_, found))), is_email)
            # An unknown identifier that repeats may be known by its second row.
            recheck = len(set(keys)) != len(keys)
        match = (_EMAIL_RE if is_email else _USER_ID_RE).fullmatch
        invalid_out = failed["invalid" + suffix]
        forgotten_out = failed["forgotten" + suffix]
        not_found_out = failed["notFound" + suffix]
        fail = created = 0
        for value, key, user in zip(values, keys, found):
            if user is None and recheck:
                user = get(key)
            if user is None:
                if not valid and match(value) is None:
                    invalid_out.append(value)
                    on_invalid(field, value)
                    fail += 1
                    continue
                if forgotten and key in forgotten:
                    forgotten_out.append(value)
                    fail += 1
                    continue
                if not creates:
                    not_found_out.append(value)
                    fail += 1
                    continue
                user = User(key, None) if is_email else User(None, key)
                index[key] = user
                created += 1
            elif forgotten and key in forgotten:
                forgotten_out.append(value)
                fail += 1
                continue
            members[user] = None
        self.user_count += created
        out.success = len(keys) - fail
        out.fail = fail
        return out

    def _subscribe_user_id_pairs(self, lst, emails, keys, user_ids, existing_only):
        """A user_id project, every row with an email and a userId, all valid and none
        forgotten: _resolve(), _create() and _upsert() inlined. (The userId designates the
        user, created if needed; the email is a plain field, updated.)"""
        out = Outcome()
        members = lst.members
        by_user_id = self.by_user_id            # UniqueIndex
        get = by_user_id.get
        by_email = self.by_email                # MultiIndex: add() inlined
        log_email = by_email.pending_keys.append
        log_user = by_email.pending_users.append
        not_found_emails = out.failed["notFoundEmails"]
        not_found_user_ids = out.failed["notFoundUserIds"]
        fail = created = 0
        for email, key, user_id in zip(emails, keys, user_ids):
            user = get(user_id)
            if user is None:
                if existing_only:
                    fail += 1
                    not_found_emails.append(email)
                    not_found_user_ids.append(user_id)
                    continue
                user = User(key, user_id)
                log_email(key)
                log_user(user)
                by_user_id[user_id] = user
                created += 1
            elif user.email != key:
                self._set_email(user, key)
            members[user] = None
        self.user_count += created
        out.success = len(keys) - fail
        out.fail = fail
        return out

    def _subscribe_pairs(self, lst, emails, user_ids, mixed, existing_only, on_invalid):
        """Rows with an email, a userId or both (mixed), else both: the loop of subscribe(),
        with the identifier formats checked in bulk."""
        if mixed:
            keys = [email.lower() if email is not None else None for email in emails]
            valid_emails = _all_valid([email for email in emails if email is not None], True)
            valid_user_ids = _all_valid(
                [user_id for user_id in user_ids if user_id is not None], False)
        else:
            keys = list(map(str.lower, emails))
            valid_emails = _all_valid(emails, True)
            valid_user_ids = _all_valid(user_ids, False)
            if (valid_emails and valid_user_ids and self.project_type == "user_id"
                    and not (self.forgotten_emails or self.forgotten_user_ids)):
                return self._subscribe_user_id_pairs(lst, emails, keys, user_ids,
                                                     existing_only)
        out = Outcome()
        failed = out.failed
        members = lst.members
        match_email = None if valid_emails else _EMAIL_RE.fullmatch
        match_user_id = None if valid_user_ids else _USER_ID_RE.fullmatch
        has_forgotten = bool(self.forgotten_emails or self.forgotten_user_ids)
        by_email_get = self.by_email.get
        by_user_id_get = self.by_user_id.get
        success = fail = 0
        for email, email_key, user_id in zip(emails, keys, user_ids):
            if user_id is None:
                user = by_email_get(email_key)
            elif email is None:
                user = by_user_id_get(user_id)
            else:
                user = None
            if user is None:
                bad = False
                if (email is not None and match_email is not None
                        and match_email(email) is None):
                    failed["invalidEmails"].append(email)
                    on_invalid("email", email)
                    bad = True
                if (user_id is not None and match_user_id is not None
                        and match_user_id(user_id) is None):
                    failed["invalidUserIds"].append(user_id)
                    on_invalid("userId", user_id)
                    bad = True
                if bad:
                    fail += 1
                    continue
            if has_forgotten and self._forgotten(email_key, user_id, email, failed):
                fail += 1
                continue
            if user is None:
                status, user = self._resolve(email_key, user_id, False, existing_only)
                if status != OK:
                    fail += 1
                    if status == NOT_FOUND:
                        _report_row(failed, "notFoundEmails", "notFoundUserIds",
                                    email, user_id)
                    else:
                        _report_row(failed, "conflictEmails", "conflictUserIds",
                                    email, user_id)
                    continue
                if user is None:
                    user = self._create(email_key, user_id)
                else:
                    user = self._upsert(user, email_key, user_id)
            members[user] = None
            success += 1
        out.success = success
        out.fail = fail
        return out

    def _register_field_types(self, data, email, user_id, out):
        """Check dataFields types; record new fields, or report the row and return False."""
        pending = []
        mismatch = self._new_field_types(data, "", pending)
        if mismatch is not None:
            _report_row(out.failed, "invalidDataEmails", "invalidDataUserIds", email, user_id)
            out.mismatches.append((email if email is not None else user_id,) + mismatch)
            return False
        for field, type_name in pending:
            if field not in self.field_types:
                self.field_types[field] = type_name
                out.created_fields.append(field)
        return True

    def unsubscribe(self, lst, rows, on_invalid):
        """rows: (email, userId) tuples. Never creates users."""
        out = Outcome()
        failed = out.failed
        members = lst.members
        has_forgotten = bool(self.forgotten_emails or self.forgotten_user_ids)
        by_email_get = self.by_email.get
        by_user_id_get = self.by_user_id.get
        success = fail = 0
        for email, user_id in rows:
            if user_id is None:             # hot path, as in subscribe()
                email_key = email.lower()
                user = by_email_get(email_key)
            elif email is None:
                email_key = None
                user = by_user_id_get(user_id)
            else:
                email_key = email.lower()
                user = None
            if user is None and self._invalid_identifiers(email, user_id, failed, on_invalid):
                fail += 1
                continue
            if has_forgotten and self._forgotten(email_key, user_id, email, failed):
                fail += 1
                continue
            if user is None:
                status, user = self._find(email_key, user_id)
                if status == CONFLICT:
                    fail += 1
                    _report_row(failed, "conflictEmails", "conflictUserIds", email, user_id)
                    continue
            if user is None or user not in members:
                fail += 1               # unknown user, or not on the list
                _report_row(failed, "notFoundEmails", "notFoundUserIds", email, user_id)
                continue
            del members[user]
            success += 1
        out.success = success
        out.fail = fail
        return out


class Store:
    """All projects (by API key) and the global list-id sequence."""

    def __init__(self, first_list_id=1001):
        self.projects = {}
        self.lists = {}             # list id -> (project, StaticList), across projects
        self.next_list_id = first_list_id

    def add_project(self, api_key, project_type, project_id=None, name=None):
        if not isinstance(api_key, str) or not api_key:
            raise ValueError("api_key must be a non-empty string")
        if api_key in self.projects:
            raise KeyError("a project with api_key %r already exists" % api_key)
        if project_id is None:
            project_id = 2158 + len(self.projects)
        if isinstance(project_id, bool) or not isinstance(project_id, int):
            raise ValueError("project_id must be an integer")
        project = Project(api_key, project_type, project_id, name)
        self.projects[api_key] = project
        return project

    def create_list(self, project, name, description=None):
        lst = StaticList(self.next_list_id, name, description)
        self.next_list_id += 1
        project.lists[lst.id] = lst
        self.lists[lst.id] = (project, lst)
        return lst

    def delete_list(self, project, list_id):
        lst = project.lists.pop(list_id, None)
        if lst is None:
            return False
        del self.lists[list_id]
        return True

    def reset(self):
        """Drop users, lists, field types and forgotten ids; keep projects and the id sequence."""
        for project in self.projects.values():
            project.clear()
        self.lists.clear()

    def describe(self):
        return [project.describe() for project in self.projects.values()]
