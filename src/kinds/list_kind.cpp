// List syncs (create_sync): the audience mirrored into a static list. Records that left the source
// are unsubscribed first, then new or changed ones subscribed (a record whose key changed is
// unsubscribed under the old key before the same user is subscribed under the new one).
#include <algorithm>

#include "engine/run_ended.hpp"
#include "engine/sync_kind.hpp"
#include "iterable/iterable_call.hpp"
#include "kinds/kinds.hpp"

namespace ia {

namespace {

class ListKind final : public SyncKind {
 public:
	const char *name() const override { return "list"; }

	const std::vector<SendOperation> &operations() const override
	{
		// Iterable documents no count, size or rate limit for these endpoints (reference 2.9, 5):
		// the batch_size setting and the shared pacing (which learns from 429s) govern.
		static const std::vector<SendOperation> ops = {
		    {batch_class::kDepartures, "unsubscribe", "/api/lists/unsubscribe", "planned_unsubscribes", "unsubscribed",
		     true, {}},
		    {batch_class::kSendable, "subscribe", "/api/lists/subscribe", "planned_subscribes", "subscribed", false, {}},
		};
		return ops;
	}

	const char *send_action() const override { return "subscribe"; }
	const char *departure_action() const override { return "unsubscribe"; }
	int departure_class() const override { return batch_class::kDepartures; }

	// One GET /api/lists proves the key and the list before anything is sent.
	void preflight(const SyncDefinition &sync, const Account &account, int64_t run_id) const override
	{
		HttpResult result = check_api_key(account, run_id);
		std::vector<ListInfo> lists;
		try {
			lists = parse_answer(account, result.body, [](const std::string &b) { return parse_lists_response(b); });
		} catch (const ResponseFormatError &e) {
			throw RunEnded{"failed", std::string("Iterable's answer to GET /api/lists is not in the documented shape (") +
			                             e.what() + "); nothing was sent"};
		}
		bool found = std::any_of(lists.begin(), lists.end(), [&](const ListInfo &l) { return l.id == sync.list_id; });
		if (!found)
			throw RunEnded{"failed", "list " + std::to_string(sync.list_id) +
			                             " no longer exists in the Iterable project of account \"" + account.name +
			                             "\"; nothing was sent. Point the sync at a list with "
			                             "iterable_audience.alter_sync('" + sync.name +
			                             "', list_id => ...) or new_list_name => ..."};
	}

	std::string request_body(const SyncDefinition &sync, const SendOperation &op,
	                         const std::vector<Subscriber> &records) const override
	{
		std::string body;
		body.reserve(records.size() * 96);
		if (op.batch_class == batch_class::kDepartures)
			append_unsubscribe_body(body, sync.list_id, records, sync.campaign_id, sync.channel_unsubscribe);
		else
			append_subscribe_body(body, sync.list_id, records, sync.update_existing_users_only);
		return body;
	}

	BulkResponse read_answer(const SendOperation &op, std::string_view body,
	                         const std::vector<Subscriber> &records) const override
	{
		return parse_bulk_response(body, records,
		                           op.batch_class == batch_class::kDepartures ? BulkAction::Unsubscribe
		                                                                      : BulkAction::Subscribe);
	}

	std::optional<std::string> fatal_answer(const SyncDefinition &sync, const HttpResult &result) const override
	{
		if (result.outcome == TransportOutcome::Response && result.status == 400 &&
		    result.body.find("invalidListId") != std::string::npos)
			return "list " + std::to_string(sync.list_id) + " no longer exists in Iterable (it was deleted during the run: " +
			       describe_call_failure(result) + "); point the sync at a list with iterable_audience.alter_sync()";
		return std::nullopt;
	}

	std::optional<RecordRefusal> whole_request_refusal(const HttpResult &) const override { return std::nullopt; }
};

}  // namespace

const SyncKind &
list_kind()
{
	static const ListKind kind;
	return kind;
}

}  // namespace ia
