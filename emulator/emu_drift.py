"""Drift: admin routes that change a list behind the sync's back, as people do in Iterable's UI
(members removed by hand, users added by another tool or unsubscribed elsewhere).

Neither route is an API request: nothing is counted in the stats, no fault or rate limit applies.

    POST /_emulator/drift/remove  {"list_id": N, "emails"?: [...], "userIds"?: [...]}
        -> {"removed": n, "not_members": [identifiers that were not on the list]}
    POST /_emulator/drift/add     {"list_id": N, "users": [{"email"?, "userId"?}, ...]}
        -> {"added": n, "failed": [{"index", "error"}]}

remove matches emails case-insensitively and userIds exactly, and leaves the users in the project.
add creates or updates each user with the rules of POST /_emulator/users (invalid identifiers and
conflicts fail) and puts it on the list (already there: counted as added).
"""

from emu_admin import AdminError, _strings


def _list(admin, body):
    list_id = body.get("list_id")
    if isinstance(list_id, bool) or not isinstance(list_id, int):
        raise AdminError(400, "list_id (an integer) required")
    entry = admin.app.store.lists.get(list_id)
    if entry is None:
        raise AdminError(404, "no list %d" % list_id)
    return entry                            # (project, StaticList)


def remove_members(admin, request):
    body = admin._body(request)
    _, lst = _list(admin, body)
    emails = [email.lower() for email in _strings(body, "emails")]
    user_ids = _strings(body, "userIds")
    by_email = {}
    by_user_id = {}
    for user in lst.members:
        if user.email is not None:
            by_email.setdefault(user.email, user)
        if user.user_id is not None:
            by_user_id.setdefault(user.user_id, user)
    removed = 0
    not_members = []
    for key, index in [(e, by_email) for e in emails] + [(u, by_user_id) for u in user_ids]:
        user = index.get(key)
        if user is None or user not in lst.members:
            not_members.append(key)
            continue
        del lst.members[user]
        removed += 1
    return {"removed": removed, "not_members": not_members}


def add_members(admin, request):
    body = admin._body(request)
    project, lst = _list(admin, body)
    users = body.get("users")
    if not isinstance(users, list):
        raise AdminError(400, "users must be a list")
    added = 0
    failed = []
    for index, spec in enumerate(users):
        if not isinstance(spec, dict):
            failed.append({"index": index, "error": "a user must be an object"})
            continue
        email, user_id = spec.get("email"), spec.get("userId")
        if (email is not None and not isinstance(email, str)) or (
                user_id is not None and not isinstance(user_id, str)):
            failed.append({"index": index, "error": "email and userId must be strings"})
            continue
        result = project.upsert_user(email, user_id, None)
        if isinstance(result, str):
            failed.append({"index": index, "error": result})
            continue
        lst.members[result[1]] = None
        added += 1
    return {"added": added, "failed": failed}


def drift_routes(admin):
    """The routes to add to Admin.routes."""
    return {
        ("POST", "/_emulator/drift/remove"): lambda request: remove_members(admin, request),
        ("POST", "/_emulator/drift/add"): lambda request: add_members(admin, request),
    }
