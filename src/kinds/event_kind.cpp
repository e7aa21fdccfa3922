// Event syncs (create_event_sync): the rows of an append-only source past the sync's cursor, each
// sent once to its Iterable endpoint (events/trackBulk, commerce/trackPurchase, commerce/updateCart,
// users/registerDeviceToken, users/registerBrowserToken, users/updateEmail or users/update). Not a
// snapshot diff: the run is engine/run_events.cpp (Planning::PastCursor); what is sent for a row is
// core/event_bodies.hpp, how answers map back core/event_responses.hpp.
#include "engine/sync_kind.hpp"
#include "iterable/iterable_call.hpp"
#include "kinds/kinds.hpp"

#include "pg/guard.hpp"

namespace ia {

namespace {

class EventKindImpl final : public SyncKind {
 public:
	const char *name() const override { return "events"; }
	Planning planning() const override { return Planning::PastCursor; }

	// One operation, for the counters a run shares with the other kinds (sync_runs.planned_events
	// and tracked); the endpoint depends on the sync's event kind.
	const std::vector<SendOperation> &operations() const override
	{
		static const std::vector<SendOperation> ops = {
		    {batch_class::kSendable, "track", "/api/events/trackBulk", "planned_events", "tracked", false,
		     {1000, 4000000, 10}},
		};
		return ops;
	}
	const char *send_action() const override { return "track"; }
	const char *departure_action() const override { return "track"; }
	int departure_class() const override { return batch_class::kForgotten; }

	// The key, before the first request of a run that has something to send; an answer not in the
	// documented shape stops the run too (nothing was sent).
	void preflight(const SyncDefinition &, const Account &account, int64_t run_id) const override
	{
		HttpResult result = check_api_key(account, run_id);
		try {
			parse_answer(account, result.body, [](const std::string &b) { return parse_lists_response(b); });
		} catch (const ResponseFormatError &e) {
			throw RunEnded{"failed", std::string("Iterable's answer to GET /api/lists is not in the documented shape (") +
			                             e.what() + "); nothing was sent"};
		}
	}

	// A run past the cursor builds its requests from source rows (run_events.cpp), never from plan
	// rows: reaching these is a bug.
	std::string request_body(const SyncDefinition &, const SendOperation &, const std::vector<Subscriber> &) const override
	{
		throw pg::UserError(ERRCODE_INTERNAL_ERROR, "an event sync has no plan rows to send");
	}
	BulkResponse read_answer(const SendOperation &, std::string_view, const std::vector<Subscriber> &) const override
	{
		throw pg::UserError(ERRCODE_INTERNAL_ERROR, "an event sync has no plan rows to send");
	}
	std::optional<std::string> fatal_answer(const SyncDefinition &, const HttpResult &) const override
	{
		return std::nullopt;
	}
	std::optional<RecordRefusal> whole_request_refusal(const HttpResult &) const override { return std::nullopt; }
};

}  // namespace

const SyncKind &
event_kind()
{
	static const EventKindImpl kind;
	return kind;
}

}  // namespace ia
