"""Admin API under /_emulator/ (no API key): inspect state, seed data, set faults, reset.

Every answer is JSON. Errors are {"error": "..."} with 400 (bad input), 404 (unknown route
or object) or 409 (duplicate project)."""

import gc
import json

from emu_faults import FaultConfigError, Faults
from emu_http import Response
from emu_model import normalize_project_type

JSON_CT = "application/json; charset=utf-8"


class AdminError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def _reply(status, obj):
    return Response(status, json.dumps(obj, separators=(",", ":")), JSON_CT)


def _strings(body, key):
    values = body.get(key) or []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise AdminError(400, "%s must be a list of strings" % key)
    return values


class Admin:
    def __init__(self, app):
        self.app = app
        self.routes = {
            ("GET", "/_emulator/health"): self.health,
            ("GET", "/_emulator/state"): self.state,
            ("GET", "/_emulator/requests"): self.requests,
            ("GET", "/_emulator/invalid_received"): self.invalid_received,
            ("GET", "/_emulator/users"): self.get_users,
            ("GET", "/_emulator/faults"): self.get_faults,
            ("POST", "/_emulator/faults"): self.set_faults,
            ("POST", "/_emulator/projects"): self.post_project,
            ("POST", "/_emulator/lists"): self.post_list,
            ("POST", "/_emulator/users"): self.post_users,
            ("POST", "/_emulator/forget"): self.forget,
            ("POST", "/_emulator/reset"): self.reset,
        }
        from emu_drift import drift_routes     # here: emu_drift imports this module
        self.routes.update(drift_routes(self))

    def handle(self, request):
        try:
            handler = self.routes.get((request.method, request.path))
            if handler is not None:
                return _reply(200, handler(request))
            parts = request.path.split("/")     # ['', '_emulator', 'lists', id, 'members']
            if (request.method == "GET" and len(parts) == 5 and parts[2] == "lists"
                    and parts[4] == "members" and parts[3].isascii() and parts[3].isdigit()):
                return _reply(200, self.members(int(parts[3])))
            raise AdminError(404, "no admin route %s %s" % (request.method, request.path))
        except AdminError as exc:
            return _reply(exc.status, {"error": str(exc)})

    @staticmethod
    def _body(request):
        if not request.body:
            return {}
        try:
            body = json.loads(request.body)
        except ValueError as exc:
            raise AdminError(400, "invalid JSON: %s" % exc) from None
        if not isinstance(body, dict):
            raise AdminError(400, "the body must be a JSON object")
        return body

    def _project(self, body):
        project = self.app.store.projects.get(body.get("api_key"))
        if project is None:
            raise AdminError(404, "unknown api_key %r" % (body.get("api_key"),))
        return project

    # ----- reads --------------------------------------------------------------------
    def health(self, request):
        return {"ok": True}

    def state(self, request):
        app = self.app
        out = {"projects": app.store.describe(), "next_list_id": app.store.next_list_id}
        out.update(app.stats.describe())
        out["faults"] = app.faults.describe()
        return out

    def requests(self, request):
        query = request.query()
        try:
            limit = int(query.get("limit", "50"))
        except ValueError:
            raise AdminError(400, "limit must be an integer") from None
        return {"requests": self.app.stats.requests(query.get("endpoint") or None, limit)}

    def invalid_received(self, request):
        return self.app.stats.invalid_received()

    def members(self, list_id):
        entry = self.app.store.lists.get(list_id)
        if entry is None:
            raise AdminError(404, "no list %d" % list_id)
        return [user.to_json() for user in entry[1].members]

    def get_users(self, request):
        query = request.query()
        project = self._project(query)
        users = project.find_users(query.get("email"), query.get("userId"))
        return {"users": [user.to_json() for user in users]}

    def get_faults(self, request):
        return self.app.faults.describe()

    # ----- writes -------------------------------------------------------------------
    def set_faults(self, request):
        try:
            self.app.faults = Faults(self._body(request))
        except FaultConfigError as exc:
            raise AdminError(400, str(exc)) from None
        return {"faults": self.app.faults.describe()}

    def add_project(self, spec):
        """Create a project from a config entry; raises AdminError."""
        if not isinstance(spec, dict):
            raise AdminError(400, "a project must be an object")
        try:
            normalize_project_type(spec.get("project_type"))
            project = self.app.store.add_project(spec.get("api_key"), spec.get("project_type"),
                                                 spec.get("project_id"), spec.get("name"))
        except KeyError as exc:
            raise AdminError(409, exc.args[0]) from None
        except ValueError as exc:
            raise AdminError(400, str(exc)) from None
        for lst in spec.get("lists") or []:
            if not isinstance(lst, dict) or not isinstance(lst.get("name"), str):
                raise AdminError(400, "a project's lists must be objects with a name")
            self.app.store.create_list(project, lst["name"], lst.get("description"))
        return project

    def post_project(self, request):
        return {"project": self.add_project(self._body(request)).describe()}

    def post_list(self, request):
        body = self._body(request)
        project = self._project(body)
        name = body.get("name")
        description = body.get("description")
        if not isinstance(name, str) or (description is not None
                                         and not isinstance(description, str)):
            raise AdminError(400, "name (string) required; description must be a string")
        return {"listId": self.app.store.create_list(project, name, description).id}

    def post_users(self, request):
        body = self._body(request)
        project = self._project(body)
        users = body.get("users")
        if not isinstance(users, list):
            raise AdminError(400, "users must be a list")
        created = updated = 0
        failed = []
        for index, spec in enumerate(users):
            result = self._upsert(project, spec)
            if result == "created":
                created += 1
            elif result == "updated":
                updated += 1
            else:
                failed.append({"index": index, "error": result})
        return {"created": created, "updated": updated, "failed": failed}

    def _upsert(self, project, spec):
        """'created', 'updated' or an error message."""
        if not isinstance(spec, dict):
            return "a user must be an object"
        email, user_id = spec.get("email"), spec.get("userId")
        data = spec.get("dataFields")
        list_ids = spec.get("listIds") or []
        if (email is not None and not isinstance(email, str)) or (
                user_id is not None and not isinstance(user_id, str)):
            return "email and userId must be strings"
        if data is not None and not isinstance(data, dict):
            return "dataFields must be an object"
        if not isinstance(list_ids, list) or any(i not in project.lists for i in list_ids):
            return "listIds must be ids of this project's lists"
        result = project.upsert_user(email, user_id, data)
        if isinstance(result, str):
            return result
        status, user = result
        for list_id in list_ids:
            project.lists[list_id].members[user] = None
        return status

    def forget(self, request):
        body = self._body(request)
        project = self._project(body)
        emails, user_ids = _strings(body, "emails"), _strings(body, "userIds")
        deleted = project.forget(emails, user_ids)
        return {"forgotten": {"emails": len(emails), "userIds": len(user_ids)},
                "deleted_users": deleted}

    def reset(self, request):
        body = self._body(request)
        app = self.app
        app.store.reset()
        app.stats.reset()
        app.faults = Faults() if body.get("faults") else app.faults.reset_counters()
        gc.unfreeze()       # see freeze_heap_periodically() in iterable_emulator.py
        gc.collect()
        return {"ok": True}
