"""POST /api/commerce/trackPurchase and POST /api/commerce/updateCart (reference 4, 10.10).

Purchases are stored per project by id (an existing id is replaced; writes are counted);
the cart is the profile's shoppingCartItems, replaced by updateCart and cleared by a
purchase. Both create or update the user from `user`, as users/update does."""

import time

from emu_activity import OK, activity_of, event_id_problem, generated_id, register_types, \
    type_mismatch, user_for_update
from emu_event_common import Checker, identity_error, invalid_id, parse_items, read_body, \
    reject_schema, reply, envelope, success, types_mismatched


def parse_user(check, body):
    """The `user` object (ApiUserUpdateRequest) of a commerce request, or None."""
    user = check.object(body, "user", "obj.user", True)
    if user is None:
        return None
    return {
        "email": check.string(user, "email", "obj.user.email"),
        "userId": check.string(user, "userId", "obj.user.userId"),
        "dataFields": check.object(user, "dataFields", "obj.user.dataFields"),
        "preferUserId": check.boolean(user, "preferUserId", "obj.user.preferUserId"),
        "mergeNestedObjects": check.boolean(user, "mergeNestedObjects",
                                            "obj.user.mergeNestedObjects"),
    }


def _no_user_identifier():
    # The 2017 recording of updateCart {"items":[],"user":{}}.
    return reply(400, envelope(
        "Either email or userId must be set: ApiUserUpdateRequest(None,None,None,None)",
        "BadParams"))


class CommerceHandlers:
    def __init__(self, app):
        self.app = app

    def _user(self, request, project, endpoint, user_spec, extra_mismatch=None):
        """(user, apply-callable, None) or (None, None, error answer) for `user`."""
        email, user_id = user_spec["email"], user_spec["userId"]
        if email is None and user_id is None:
            self.app.stats.note_invalid(endpoint, "missing_identifier", 0)
            return None, None, _no_user_identifier()
        status, user, apply = user_for_update(project, email, user_id,
                                              user_spec["preferUserId"] is True)
        if status != OK:
            return None, None, identity_error(self.app, endpoint, status, email, user_id)
        mismatches = []
        data = user_spec["dataFields"]
        if data:
            mismatch = type_mismatch(project.field_types, data, {})
            if mismatch is not None:
                mismatches.append(("user", mismatch))
        if extra_mismatch is not None:
            mismatches.append(extra_mismatch)
        if mismatches:
            category = mismatches[0][0]
            return None, None, types_mismatched(self.app, endpoint, request, project,
                                                category, [m for _, m in mismatches])
        return user, apply, None

    @staticmethod
    def _update_profile(project, user, user_spec):
        data = user_spec["dataFields"]
        if data:
            register_types(project.field_types, data, [])
            project._merge(user, data, user_spec["mergeNestedObjects"] is True)

    def track_purchase(self, request, project, arg, notes):
        body, error = read_body(self.app, request, "track_purchase", project)
        if error is not None:
            return error
        check = Checker()
        user_spec = parse_user(check, body)
        items = check.array(body, "items", "obj.items", True)
        if items is not None:
            items = parse_items(check, items, "obj.items")
        total = check.number(body, "total", "obj.total", True)
        purchase_id = check.string(body, "id", "obj.id")
        created_at = check.integer(body, "createdAt", "obj.createdAt")
        data = check.object(body, "dataFields", "obj.dataFields")
        campaign_id = check.integer(body, "campaignId", "obj.campaignId")
        template_id = check.integer(body, "templateId", "obj.templateId")
        rejected = reject_schema(self.app, request, "track_purchase", check)
        if rejected is not None:
            return rejected
        if purchase_id is not None:
            problem = event_id_problem(purchase_id)
            if problem is not None:
                return invalid_id(self.app, "track_purchase", purchase_id, problem)
        activity = activity_of(project)
        purchase_mismatch = None
        if data:
            mismatch = type_mismatch(activity.purchase_field_types, data, {})
            if mismatch is not None:
                purchase_mismatch = ("purchase", mismatch)
        user, apply, error = self._user(request, project, "track_purchase", user_spec,
                                        purchase_mismatch)
        if error is not None:
            return error
        user = apply()
        self._update_profile(project, user, user_spec)
        if user.data and user.data.get("shoppingCartItems"):
            user.data["shoppingCartItems"] = []     # a purchase clears the cart
        if data:
            register_types(activity.purchase_field_types, data, [])
        record = {
            "id": purchase_id if purchase_id is not None else generated_id(),
            "email": user_spec["email"], "userId": user_spec["userId"], "items": items,
            "total": total,
            "createdAt": created_at if created_at is not None else int(time.time()),
            "createdAt_sent": created_at is not None, "dataFields": data or {},
            "campaignId": campaign_id, "templateId": template_id,
            "seq": activity.next_seq(), "user": user,
        }
        activity.store_purchase(record)
        notes["id"] = record["id"]
        return success()

    def update_cart(self, request, project, arg, notes):
        body, error = read_body(self.app, request, "update_cart", project)
        if error is not None:
            return error
        check = Checker()
        user_spec = parse_user(check, body)
        items = check.array(body, "items", "obj.items", True)
        if items is not None:
            items = parse_items(check, items, "obj.items")
        rejected = reject_schema(self.app, request, "update_cart", check)
        if rejected is not None:
            return rejected
        user, apply, error = self._user(request, project, "update_cart", user_spec)
        if error is not None:
            return error
        user = apply()
        self._update_profile(project, user, user_spec)
        if user.data is None:
            user.data = {}
        user.data["shoppingCartItems"] = items
        activity = activity_of(project)
        activity.cart_updates.append((activity.next_seq(), user, items))
        notes["items"] = len(items)
        return success()
