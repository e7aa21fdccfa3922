// User syncs (create_user_sync): each new or changed row of the source updates its user's profile
// through POST /api/users/bulkUpdate. A row that leaves the source sends nothing (the profile stays
// in Iterable); the snapshot forgets it, so that it is sent again if it comes back.
#include <nlohmann/json.hpp>

#include "engine/sync_kind.hpp"
#include "iterable/iterable_call.hpp"
#include "iterable/shared_pacing.hpp"
#include "kinds/kinds.hpp"

namespace ia {

namespace {

// Iterable documents a 4 MB body and 5 requests/s per project for bulkUpdate (reference 3.1, 10.1;
// the rate is shared_pacing's documented_limit()), and no record count (peers send 1000; the
// batch_size setting applies).
const char *const kBulkUpdatePath = "/api/users/bulkUpdate";
constexpr size_t kBulkUpdateMaxBody = 4000000;  // "4MB": the smaller reading

// The fields a 400 RequestFieldsTypesMismatched names (params.validationErrors), comma-separated.
std::string
mismatched_fields(const std::string &body)
{
	nlohmann::json doc = nlohmann::json::parse(body, nullptr, false);
	if (doc.is_discarded() || !doc.is_object())
		return {};
	auto params = doc.find("params");
	if (params == doc.end() || !params->is_object())
		return {};
	auto errors = params->find("validationErrors");
	if (errors == params->end() || !errors->is_object())
		return {};
	std::string fields;
	for (auto it = errors->begin(); it != errors->end(); ++it) {
		std::string one = it.key();
		if (it.value().is_object() && it.value().contains("expectedType") && it.value()["expectedType"].is_string())
			one += " (Iterable expects " + it.value()["expectedType"].get<std::string>() + ")";
		fields += (fields.empty() ? "" : ", ") + one;
	}
	return fields;
}

class UserKind final : public SyncKind {
 public:
	const char *name() const override { return "users"; }

	const std::vector<SendOperation> &operations() const override
	{
		static const std::vector<SendOperation> ops = {
		    {batch_class::kForgotten, "forget", nullptr, nullptr, nullptr, false, {}, nullptr},
		    {batch_class::kSendable, "update_user", kBulkUpdatePath, "planned_updates", "updated", false,
		     {0, kBulkUpdateMaxBody, documented_limit(kBulkUpdatePath)}, "user update"},
		};
		return ops;
	}

	const char *send_action() const override { return "update_user"; }
	const char *departure_action() const override { return "forget"; }
	int departure_class() const override { return batch_class::kForgotten; }

	// The key, before anything is sent (there is no list to check).
	void preflight(const SyncDefinition &, const Account &account, int64_t run_id) const override
	{
		check_api_key(account, run_id);
	}

	std::string request_body(const SyncDefinition &sync, const SendOperation &,
	                         const std::vector<Subscriber> &records) const override
	{
		std::string body;
		append_bulk_update_body(body, records, sync.prefer_user_id, sync.merge_nested_objects);
		return body;
	}

	// bulkUpdate answers as list subscribe does (UserBulkUpdateListResponse, reference 10.6).
	BulkResponse read_answer(const SendOperation &, std::string_view body,
	                         const std::vector<Subscriber> &records) const override
	{
		return parse_bulk_response(body, records, BulkAction::Subscribe);
	}

	std::optional<std::string> fatal_answer(const SyncDefinition &, const HttpResult &) const override
	{
		return std::nullopt;
	}

	// A field whose type conflicts with the project's schema refuses the whole request (400
	// RequestFieldsTypesMismatched, reference 10.8) without naming the record.
	std::optional<RecordRefusal> whole_request_refusal(const HttpResult &result) const override
	{
		if (result.outcome != TransportOutcome::Response || result.status != 400)
			return std::nullopt;
		std::optional<ApiError> error = parse_error_envelope(result.body);
		if (!error || error->code != "RequestFieldsTypesMismatched")
			return std::nullopt;
		std::string fields = mismatched_fields(result.body);
		return RecordRefusal{"invalid_data", "Iterable refused the record's dataFields: " + describe_call_failure(result) +
		                                         (fields.empty() ? std::string() : "; fields: " + fields)};
	}
};

}  // namespace

const SyncKind &
user_kind()
{
	static const UserKind kind;
	return kind;
}

}  // namespace ia
