"""POST /api/users/registerDeviceToken, /registerBrowserToken and /updateEmail
(reference 4, 10.11, 10.12). Tokens are kept on the profile (User.data "devices" and
"browserTokens"); email changes move the profile, its events and purchases with it."""

from emu_activity import MAX_BROWSER_TOKENS, MAX_DEVICES, OK, activity_of, user_for_update
from emu_event_common import Checker, envelope, identity_error, no_identifier, read_body, \
    reject_schema, reply, success
from emu_model import is_valid_email, is_valid_user_id

PLATFORMS = ("APNS", "APNS_SANDBOX", "GCM")


class ProfileHandlers:
    def __init__(self, app):
        self.app = app

    def register_device_token(self, request, project, arg, notes):
        body, error = read_body(self.app, request, "register_device_token", project)
        if error is not None:
            return error
        check = Checker()
        email = check.string(body, "email", "obj.email")
        user_id = check.string(body, "userId", "obj.userId")
        prefer = check.boolean(body, "preferUserId", "obj.preferUserId")
        device = check.object(body, "device", "obj.device", True)
        if device is not None:
            token = check.string(device, "token", "obj.device.token", True)
            platform = check.string(device, "platform", "obj.device.platform", True)
            if platform is not None and platform not in PLATFORMS:
                check.fail("obj.device.platform", "error.expected.validenumvalue")
            app_name = check.string(device, "applicationName", "obj.device.applicationName",
                                    True)
            data = check.object(device, "dataFields", "obj.device.dataFields")
        rejected = reject_schema(self.app, request, "register_device_token", check)
        if rejected is not None:
            return rejected
        if email is None and user_id is None:
            self.app.stats.note_invalid("register_device_token", "missing_identifier", 0)
            return no_identifier("RegisterDeviceTokenRequest")
        status, user, apply = user_for_update(project, email, user_id, prefer is True)
        if status != OK:
            return identity_error(self.app, "register_device_token", status, email, user_id)
        if token == "":
            # The 2017 recording: an empty token is a 500.
            return reply(500, envelope("Unable to register token to user Some(%s)"
                                       % (email if email is not None else user_id),
                                       "GenericError"))
        devices = (user.data or {}).get("devices") or [] if user is not None else []
        known = next((d for d in devices if d.get("token") == token), None)
        if known is None and len(devices) >= MAX_DEVICES:
            return reply(400, envelope("User has reached the maximum of %d devices"
                                       % MAX_DEVICES, "BadParams"))
        user = apply()
        if user.data is None:
            user.data = {}
        devices = user.data.setdefault("devices", [])
        known = next((d for d in devices if d.get("token") == token), None)
        if known is None:
            devices.append({"token": token, "platform": platform, "applicationName": app_name,
                            "endpointEnabled": True, "dataFields": dict(data or {})})
        else:                               # re-registering updates the device
            known["platform"] = platform
            known["applicationName"] = app_name
            known["dataFields"] = dict(known.get("dataFields") or {}, **(data or {}))
        registrations = activity_of(project).device_registrations
        registrations[token] = registrations.get(token, 0) + 1
        notes["platform"] = platform
        return success()

    def register_browser_token(self, request, project, arg, notes):
        body, error = read_body(self.app, request, "register_browser_token", project)
        if error is not None:
            return error
        check = Checker()
        email = check.string(body, "email", "obj.email")
        user_id = check.string(body, "userId", "obj.userId")
        token = check.string(body, "browserToken", "obj.browserToken", True)
        rejected = reject_schema(self.app, request, "register_browser_token", check)
        if rejected is not None:
            return rejected
        if email is None and user_id is None:
            self.app.stats.note_invalid("register_browser_token", "missing_identifier", 0)
            return no_identifier("RegisterBrowserTokenRequest")
        status, user, apply = user_for_update(project, email, user_id, False)
        if status != OK:
            return identity_error(self.app, "register_browser_token", status, email, user_id)
        if token == "":
            return reply(400, envelope("browserToken must not be empty", "BadParams"))
        tokens = (user.data or {}).get("browserTokens") or [] if user is not None else []
        if token not in tokens and len(tokens) >= MAX_BROWSER_TOKENS:
            return reply(400, envelope("User has reached the maximum of %d browser tokens"
                                       % MAX_BROWSER_TOKENS, "BadParams"))
        user = apply()
        if user.data is None:
            user.data = {}
        tokens = user.data.setdefault("browserTokens", [])
        if token not in tokens:
            tokens.append(token)
        registrations = activity_of(project).browser_registrations
        registrations[token] = registrations.get(token, 0) + 1
        return success()

    def update_email(self, request, project, arg, notes):
        body, error = read_body(self.app, request, "update_email", project)
        if error is not None:
            return error
        check = Checker()
        current_email = check.string(body, "currentEmail", "obj.currentEmail")
        current_user_id = check.string(body, "currentUserId", "obj.currentUserId")
        new_email = check.string(body, "newEmail", "obj.newEmail", True)
        rejected = reject_schema(self.app, request, "update_email", check)
        if rejected is not None:
            return rejected
        if project.project_type != "email":
            return reply(400, envelope(
                "updateEmail is only available in email-based projects; in userID-based and "
                "hybrid projects change the email with users/update (dataFields.email)",
                "BadParams"))
        if not is_valid_email(new_email):
            self.app.stats.note_invalid("update_email", "emails", new_email)
            return reply(400, envelope("Invalid email: %s" % new_email,
                                       "InvalidEmailAddressError"))
        if current_email is not None:       # currentEmail wins over currentUserId
            if not is_valid_email(current_email):
                self.app.stats.note_invalid("update_email", "emails", current_email)
                return reply(400, envelope("Invalid email: %s" % current_email,
                                           "InvalidEmailAddressError"))
            user = project.by_email.get(current_email.lower())
            current = current_email
        elif current_user_id is not None:
            if not is_valid_user_id(current_user_id):
                self.app.stats.note_invalid("update_email", "userIds", current_user_id)
                return reply(400, envelope("Invalid userId: %s" % current_user_id,
                                           "InvalidUserIdError"))
            user = project.by_user_id.get(current_user_id)
            current = current_user_id
        else:
            self.app.stats.note_invalid("update_email", "missing_identifier", 0)
            return reply(400, envelope("Either currentEmail or currentUserId must be set",
                                       "BadParams"))
        if user is None:
            return reply(400, envelope("Cannot change user %s to %s: User does not exist"
                                       % (current, new_email), "BadParams"))
        new_key = new_email.lower()
        if new_key in project.forgotten_emails:
            return reply(409, envelope("New email is on the forgotten list",
                                       "EmailAlreadyExists"))
        if project.by_email.get(new_key) is not None:
            return reply(409, envelope("New email already exists", "EmailAlreadyExists"))
        activity = activity_of(project)
        activity.email_changes.append({
            "seq": activity.next_seq(), "currentEmail": current_email,
            "currentUserId": current_user_id, "oldEmail": user.email, "newEmail": new_key,
            "userId": user.user_id})
        project._set_email(user, new_key)
        return success()

