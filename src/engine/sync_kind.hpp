// What differs between the kinds of sync ('list', 'users', later 'events'); everything else about a
// run is shared (engine/sync_run.hpp: claim, plan, validate, ledger, send, settle, retention).
//
// A kind says:
//   * its operations, in the order a run performs them (a list unsubscribes, then subscribes; a user
//     sync updates profiles and forgets locally the records that left its source): which plan rows
//     each takes (batch_class), its endpoint, its sync_runs counters, its action in sync_logs;
//   * per endpoint, Iterable's limits: records per request, bytes per body, the documented rate;
//   * how a batch of records becomes a request body, and how Iterable's answer maps back to
//     per-record outcomes (or says the request must be split to isolate one record);
//   * which answers end the run (beyond the shared ones: 401), and what to check before sending.
// One implementation per kind lives in src/kinds/; sync_kind() finds it by the sync's kind.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/iterable_json.hpp"
#include "definitions/account_store.hpp"
#include "definitions/sync_definition.hpp"
#include "core/http_client.hpp"

namespace ia {

// Plan row classes (plan_sql.hpp): shared by every kind.
namespace batch_class {
constexpr int kDepartures = 0;  // records that left the source (list: unsubscribed)
constexpr int kSendable = 1;    // new or changed records
constexpr int kRefused = 2;     // refused by validation before sending
constexpr int kSkipped = 3;     // an earlier failure says not to send them again
constexpr int kForgotten = 4;   // left the source; nothing is sent, the snapshot forgets them
}  // namespace batch_class

// Iterable's documented limits of one endpoint (0 = none documented).
struct EndpointLimits {
	int64_t max_records = 0;        // records per request (the batch_size setting applies as well)
	size_t max_body_bytes = 0;      // bytes per request body; a record alone over it fails 'too_large'
	double documented_rps = 0;      // requests per second per project
};

struct SendOperation {
	int batch_class;            // the plan rows it takes
	const char *action;         // sync_batch.action, sync_logs.action
	const char *path;           // POST endpoint; nullptr: recorded without a request (kForgotten)
	const char *planned_column; // sync_runs column of the planned count (nullptr: not counted)
	const char *done_column;    // sync_runs column of the records Iterable acknowledged
	bool removes;               // counts against the removal guard (max_removal_fraction)
	EndpointLimits limits;
	const char *answer_name;    // what its 200 answer is, for errors: "list update", "user update"
};

class SyncKind {
 public:
	virtual ~SyncKind() = default;

	// How a run finds what to send. SnapshotDiff: the source is compared with the latest snapshot
	// (lists, users: run_plan.cpp, run_send.cpp, the methods below). PastCursor: the rows past the
	// sync's cursor are sent once each (event syncs: run_events.cpp; the methods below that read
	// plan rows are not used).
	enum class Planning { SnapshotDiff, PastCursor };
	virtual Planning planning() const { return Planning::SnapshotDiff; }

	virtual const char *name() const = 0;  // syncs.kind

	// In the order a run performs them.
	virtual const std::vector<SendOperation> &operations() const = 0;

	// The plan's action for a record that joined or changed (sent), and for one that left.
	virtual const char *send_action() const = 0;
	virtual const char *departure_action() const = 0;
	// The batch class of records that left the source: kDepartures (sent) or kForgotten (local).
	virtual int departure_class() const = 0;

	// Checked before anything is sent (the key, the list ...); throws RunEnded (run_ended.hpp).
	virtual void preflight(const SyncDefinition &sync, const Account &account, int64_t run_id) const = 0;

	// The request body of a batch of records.
	virtual std::string request_body(const SyncDefinition &sync, const SendOperation &op,
	                                 const std::vector<Subscriber> &records) const = 0;

	// Maps a 2xx answer to per-record outcomes (same order as `records`). Throws ResponseFormatError.
	virtual BulkResponse read_answer(const SendOperation &op, std::string_view body,
	                                 const std::vector<Subscriber> &records) const = 0;

	// An answer refusing the whole request that ends the run (the shared rules already end it on a
	// 401): the run's error, else nullopt.
	virtual std::optional<std::string> fatal_answer(const SyncDefinition &sync, const HttpResult &result) const = 0;

	// An answer refusing the whole request because of one record (Iterable names no record): the
	// request is split until the record is alone, and only it fails, with this code and message.
	// nullopt when the answer is not such a refusal.
	struct RecordRefusal {
		std::string error_code;
		std::string error_message;
	};
	virtual std::optional<RecordRefusal> whole_request_refusal(const HttpResult &result) const = 0;
};

// The implementation of a kind ('list', 'users'); throws UserError for an unknown kind.
const SyncKind &sync_kind(const std::string &kind);

}  // namespace ia
