"""POST /api/events/track and POST /api/events/trackBulk (reference sections 4, 10.3-10.8).

Events are stored per project by id: an event whose id the project already has replaces
it, and every accepted write of an id is counted (admin: /_emulator/events, /writes).
See emulator/README.md, "Events, commerce, tokens and email changes"."""

import time

from emu_activity import OK, NOT_FOUND, FORGOTTEN_EMAIL, FORGOTTEN_USER_ID, INVALID_EMAIL, \
    INVALID_USER_ID, activity_of, event_id_problem, generated_id, register_types, \
    type_mismatch, user_for_event
from emu_event_common import Checker, identity_error, invalid_id, no_identifier, read_body, \
    reject_schema, reply, success, types_mismatched

TRACK_FAILED_KEYS = ("invalidEmails", "invalidUserIds", "notFoundEmails", "notFoundUserIds",
                     "forgottenEmails", "forgottenUserIds")

# createdAt above this is taken for milliseconds (year 5138 in seconds): noted, since
# Iterable expects seconds (reference 10.4).
_SECONDS_CEILING = 10 ** 11


def parse_track(check, obj, path):
    """The fields of one TrackRequest (JSON types checked into `check`)."""
    prefix = path + "."
    return {
        "eventName": check.string(obj, "eventName", prefix + "eventName", True),
        "email": check.string(obj, "email", prefix + "email"),
        "userId": check.string(obj, "userId", prefix + "userId"),
        "id": check.string(obj, "id", prefix + "id"),
        "createdAt": check.integer(obj, "createdAt", prefix + "createdAt"),
        "dataFields": check.object(obj, "dataFields", prefix + "dataFields"),
        "campaignId": check.integer(obj, "campaignId", prefix + "campaignId"),
        "templateId": check.integer(obj, "templateId", prefix + "templateId"),
        "createNewFields": check.boolean(obj, "createNewFields", prefix + "createNewFields"),
    }


def _note_created_at(app, endpoint, event):
    created_at = event["createdAt"]
    if created_at is not None and abs(created_at) >= _SECONDS_CEILING:
        app.stats.note_invalid(endpoint, "created_at_ms", created_at,
                               detail={"id": event["id"]})


def _record(event, user, endpoint, activity):
    created_at = event["createdAt"]
    return {
        "id": event["id"] if event["id"] is not None else generated_id(),
        "eventName": event["eventName"], "email": event["email"], "userId": event["userId"],
        "createdAt": created_at if created_at is not None else int(time.time()),
        "createdAt_sent": created_at is not None,
        "dataFields": event["dataFields"] or {}, "campaignId": event["campaignId"],
        "templateId": event["templateId"], "endpoint": endpoint, "seq": activity.next_seq(),
        "user": user,
    }


def _event_mismatches(activity, events):
    """Type conflicts of dataFields with the types known for each event name (and with
    earlier events of the same request)."""
    pending_by_name = {}
    mismatches = []
    for event in events:
        data = event["dataFields"]
        if not data:
            continue
        name = event["eventName"]
        known = activity.event_field_types.get(name, {})
        pending = pending_by_name.setdefault(name, {})
        mismatch = type_mismatch(known, data, pending)
        if mismatch is not None:
            mismatches.append(mismatch)
    return mismatches


def _apply(activity, event, user, endpoint, created_fields):
    data = event["dataFields"]
    if data:
        register_types(activity.event_field_types.setdefault(event["eventName"], {}), data,
                       created_fields)
    record = _record(event, user, endpoint, activity)
    activity.store_event(record)
    return record


class EventHandlers:
    def __init__(self, app):
        self.app = app

    def _common_checks(self, request, project, endpoint, events, indexes_name):
        """The whole-request refusals shared by track and trackBulk: None or an answer."""
        missing = [i for i, event in enumerate(events)
                   if event["email"] is None and event["userId"] is None]
        if missing:
            for index in missing:
                self.app.stats.note_invalid(endpoint, "missing_identifier", index)
            if indexes_name is None:
                return no_identifier("TrackRequest")
            response = no_identifier("".join("events[%d]" % i for i in missing[:10]))
            return response
        for event in events:
            if event["id"] is not None:
                problem = event_id_problem(event["id"])
                if problem is not None:
                    return invalid_id(self.app, endpoint, event["id"], problem)
        mismatches = _event_mismatches(activity_of(project), events)
        if mismatches:
            return types_mismatched(self.app, endpoint, request, project, "event", mismatches)
        return None

    def track(self, request, project, arg, notes):
        body, error = read_body(self.app, request, "track", project)
        if error is not None:
            return error
        check = Checker()
        event = parse_track(check, body, "obj")
        rejected = reject_schema(self.app, request, "track", check)
        if rejected is None:
            rejected = self._common_checks(request, project, "track", [event], None)
        if rejected is not None:
            return rejected
        activity = activity_of(project)
        email, user_id = event["email"], event["userId"]
        status, user = user_for_event(project, email, user_id)
        if status != OK:
            return identity_error(self.app, "track", status, email, user_id,
                                  forgotten_status=400)
        name = event["eventName"]
        notes["eventName"] = name
        if activity.is_disallowed(name):
            # BLK's mock of Iterable: a 200 whose msg says so (reference 10.8).
            notes["disallowed"] = True
            return success("event %s is disallowed from tracking." % name)
        _note_created_at(self.app, "track", event)
        record = _apply(activity, event, user, "track", [])
        notes["id"] = record["id"]
        return success("Event with id: %s tracked." % record["id"], {"id": record["id"]})

    def track_bulk(self, request, project, arg, notes):
        body, error = read_body(self.app, request, "track_bulk", project)
        if error is not None:
            return error
        check = Checker()
        raw_events = check.array(body, "events", "obj.events", True)
        events = []
        for index, raw in enumerate(raw_events or []):
            path = "obj.events[%d]" % index
            if type(raw) is not dict:
                check.fail(path, "error.expected.jsobject")
                continue
            events.append(parse_track(check, raw, path))
        rejected = reject_schema(self.app, request, "track_bulk", check)
        if rejected is None:
            rejected = self._common_checks(request, project, "track_bulk", events, "events")
        if rejected is not None:
            return rejected
        activity = activity_of(project)
        failed = {key: [] for key in TRACK_FAILED_KEYS}
        disallowed = []
        created_fields = []
        fail = 0
        for event in events:
            email, user_id = event["email"], event["userId"]
            status, user = user_for_event(project, email, user_id)
            if status != OK:
                fail += 1
                self._report(failed, status, email, user_id)
                continue
            name = event["eventName"]
            if activity.is_disallowed(name):
                fail += 1
                if name not in disallowed:
                    disallowed.append(name)
                continue
            _note_created_at(self.app, "track_bulk", event)
            _apply(activity, event, user, "track_bulk", created_fields)
        notes["events"] = len(events)
        notes["successCount"] = len(events) - fail
        notes["failCount"] = fail
        return reply(200, self._bulk_answer(activity, len(events) - fail, fail, failed,
                                            disallowed, created_fields))

    def _report(self, failed, status, email, user_id):
        if status == INVALID_EMAIL:
            failed["invalidEmails"].append(email)
            self.app.stats.note_invalid("track_bulk", "emails", email)
        elif status == INVALID_USER_ID:
            failed["invalidUserIds"].append(user_id)
            self.app.stats.note_invalid("track_bulk", "userIds", user_id)
        elif status == FORGOTTEN_EMAIL:
            failed["forgottenEmails"].append(email)
        elif status == FORGOTTEN_USER_ID:
            failed["forgottenUserIds"].append(user_id)
        elif status == NOT_FOUND:           # every identifier the event carried
            if email is not None:
                failed["notFoundEmails"].append(email)
            if user_id is not None:
                failed["notFoundUserIds"].append(user_id)

    @staticmethod
    def _bulk_answer(activity, success_count, fail, failed, disallowed, created_fields):
        if activity.settings.track_bulk_shape == "recorded":
            # The live answer recorded in 2022: no failedUpdates at all.
            return {"successCount": success_count, "failCount": fail,
                    "invalidEmails": failed["invalidEmails"],
                    "invalidUserIds": failed["invalidUserIds"],
                    "disallowedEventNames": disallowed}
        return {"successCount": success_count, "failCount": fail,
                "invalidEmails": list(failed["invalidEmails"]),
                "invalidUserIds": list(failed["invalidUserIds"]),
                "disallowedEventNames": disallowed, "failedUpdates": failed,
                "createdFields": created_fields, "filteredOutFields": []}
