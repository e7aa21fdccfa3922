// The run of a sync whose kind plans 'rows past the cursor' (SyncKind::Planning::PastCursor: event
// syncs): read the rows past the cursor in ranges (event_cursor.hpp), build each row's request
// (core/event_bodies.hpp), write each batch to the ledger (sync_batch) durably before its request,
// send it paced per project and endpoint, map Iterable's answer to each row (core/event_responses.hpp)
// and commit, per batch, the rows' log, the sent set and the run's counters together.
// Exactly once: a row is in the sent set only once Iterable answered for it; a row sent whose answer
// was lost is sent again by the next run with the same id (Iterable replaces it).
#include <algorithm>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "core/event_batches.hpp"
#include "core/event_responses.hpp"
#include "definitions/event_sync_definition.hpp"
#include "engine/event_cursor.hpp"
#include "engine/event_rows.hpp"
#include "engine/run.hpp"
#include "engine/run_preparation.hpp"
#include "engine/run_progress.hpp"
#include "iterable/iterable_call.hpp"
#include "iterable/paced_attempts.hpp"
#include "iterable/shared_pacing.hpp"
#include "settings.hpp"

#include "pg/roles.hpp"
#include "pg/spi.hpp"
#include "pg/transaction.hpp"

extern "C" {
#include "miscadmin.h"
}

namespace ia {

namespace {

constexpr int64_t kChunkRows = 1000;     // rows read per range (and at most per trackBulk)
constexpr size_t kSingleGroup = 50;      // single-record requests per ledger row
constexpr double kTrackBulkRps = 10;     // documented (reference 10.9)
constexpr double kDeviceTokenRps = 500;  // documented for registerDeviceToken

// One row of a batch: its built request and what the log and the sent set need.
struct Pending {
	CursorRow row;
	BuiltEvent built;
	std::string error_code, error_message;  // set once failed
	bool failed = false;
	bool uncertain = false;  // no answer, or a 5xx: Iterable may have applied it
};

std::string
data_fields_of(const std::string &event_json)
{
	nlohmann::json doc = nlohmann::json::parse(event_json, nullptr, false);
	if (doc.is_object() && doc.contains("dataFields"))
		return doc["dataFields"].dump();
	return {};
}

}  // namespace

class EventRun {
 public:
	EventRun(Run &run, const EventSyncDefinition &events)
	    : run_(run), events_(events), cursor_(run.sync_, events, run.request_.run_id),
	      options_(event_build_options(run.sync_, events))
	{
	}

	void perform();

 private:
	void handle(std::vector<CursorRow> rows);
	void send_track(std::vector<Pending> &batch);
	void send_track_part(std::vector<Pending> &batch, const std::vector<size_t> &part, int64_t &requests);
	void send_single(std::vector<Pending> &group);
	void answer_single(Pending &p, const HttpResult &result, bool uncertain, bool resent);
	HttpResult call(const std::string &path, std::string body);
	int ledger_row(const std::vector<Pending> &rows, bool refused);
	void record(int batch_no, const std::vector<Pending> &rows, int64_t requests);
	void fail(Pending &p, const std::string &code, const std::string &message);

	Run &run_;
	const EventSyncDefinition &events_;
	EventCursor cursor_;
	EventBuildOptions options_;
	bool checked_ = false;  // the preflight ran
	int64_t handled_ = 0;
	int64_t requests_ = 0, rate_limited_ = 0;
	uint64_t next_tag_ = 1;
};

// One trackBulk request (one at a time: its documented limit is 10 requests/s per project).
HttpResult
EventRun::call(const std::string &path, std::string body)
{
	SharedPacing pacing(MyDatabaseId, run_.account_.account_id, path, kTrackBulkRps);
	while (!pacing.may_send()) {
		pg::throw_if_interrupted();
		pg_usleep(static_cast<long>(std::clamp(pacing.wait_seconds(), 0.001, 0.1) * 1e6));
	}
	pacing.on_sent();
	PacedAttempts paced(HttpClient::process_instance(), pacing);
	HttpResult result = call_iterable(iterable_request(run_.account_, "POST", path, std::move(body)),
	                                  http_options_from_settings());
	requests_ += result.attempts;
	rate_limited_ += result.rate_limited;
	return result;
}

void
EventRun::fail(Pending &p, const std::string &code, const std::string &message)
{
	p.failed = true;
	p.error_code = code;
	p.error_message = message;
}

// The ledger row of a batch, committed durably before its request goes out (a refused batch is
// answered at once). Returns its batch_no.
int
EventRun::ledger_row(const std::vector<Pending> &rows, bool refused)
{
	int batch_no = run_.next_batch_no_++;
	std::vector<pg::SqlValue> keys, ops, emails, user_ids, hashes, notes;
	for (const Pending &p : rows) {
		keys.emplace_back(p.built.record_key.empty() ? p.row.cursor.value_or("") : p.built.record_key);
		ops.emplace_back("insert");
		emails.emplace_back(p.built.email.empty() ? pg::SqlValue() : pg::SqlValue(p.built.email));
		user_ids.emplace_back(p.built.user_id.empty() ? pg::SqlValue() : pg::SqlValue(p.built.user_id));
		hashes.emplace_back("0");
		notes.emplace_back(p.built.note.empty() ? pg::SqlValue() : pg::SqlValue(p.built.note));
	}
	pg::in_transaction([&] {
		pg::exec("SET LOCAL synchronous_commit = on");
		pg::AsRole as_extension_owner(pg::extension_owner());
		pg::exec("INSERT INTO iterable_audience.sync_batch (run_id, batch_no, sync_id, kind, action, logged, record_keys, "
		         "operations, emails, user_ids, row_hashes, notes) VALUES ($1::bigint, $2::integer, $3::bigint, $4, $5, "
		         "$6::boolean, $7::text[], $8::text[], $9::text[], $10::text[], $11::bigint[], $12::text[])",
		         {std::to_string(run_.request_.run_id), std::to_string(batch_no), std::to_string(run_.sync_.sync_id),
		          refused ? "refused" : "sent", std::string(event_kind_action(events_.kind)),
		          run_.sync_.retain_sync_logs ? "true" : "false", pg::array_literal(keys), pg::array_literal(ops),
		          pg::array_literal(emails), pg::array_literal(user_ids), pg::array_literal(hashes),
		          pg::array_literal(notes)});
	});
	return batch_no;
}

// Iterable's answer for a batch: the rows' log, the sent set (a failure that may succeed later is
// sent again by later runs with retry_failed_records), the run's counters. One transaction.
void
EventRun::record(int batch_no, const std::vector<Pending> &rows, int64_t requests)
{
	std::vector<pg::SqlValue> codes, messages, keys, cursors, ids, states, notes;
	int64_t failed = 0;
	for (const Pending &p : rows) {
		notes.emplace_back(p.built.note.empty() ? pg::SqlValue() : pg::SqlValue(p.built.note));
		codes.emplace_back(p.failed ? pg::SqlValue(p.error_code) : pg::SqlValue());
		messages.emplace_back(p.failed ? pg::SqlValue(p.error_message) : pg::SqlValue());
		failed += p.failed ? 1 : 0;
		keys.emplace_back(p.row.row_key);
		cursors.emplace_back(p.row.cursor.value_or(""));
		ids.emplace_back(p.built.record_key.empty() ? p.row.cursor.value_or("") : p.built.record_key);
		bool again = p.failed && run_.sync_.retry_failed_records && !is_permanent_error(p.error_code);
		// An email change that may have been made stays in flight: the next run tells (mark_in_flight).
		bool in_doubt = p.failed && p.uncertain && events_.kind == EventKind::EmailChange;
		states.emplace_back(in_doubt ? "in_flight" : again ? "retry" : "done");
	}
	const std::string run = std::to_string(run_.request_.run_id), sync = std::to_string(run_.sync_.sync_id);
	pg::in_transaction([&] {
		pg::AsRole as_extension_owner(pg::extension_owner());
		pg::exec("UPDATE iterable_audience.sync_batch SET answered_at = clock_timestamp(), error_codes = "
		         "CASE WHEN $3::integer > 0 THEN $4::text[] END, error_messages = CASE WHEN $3::integer > 0 THEN "
		         "$5::text[] END, notes = $6::text[] WHERE run_id = $1::bigint AND batch_no = $2::integer",
		         {run, std::to_string(batch_no), std::to_string(failed), pg::array_literal(codes),
		          pg::array_literal(messages), pg::array_literal(notes)});
		pg::exec("INSERT INTO iterable_audience.event_sync_sent (sync_id, row_key, cursor_value, event_id, state, run_id) "
		         "SELECT $1::bigint, k, c, i, s, $2::bigint FROM unnest($3::text[], $4::text[], $5::text[], $6::text[]) "
		         "AS u(k, c, i, s) ON CONFLICT (sync_id, row_key) DO UPDATE SET state = excluded.state, "
		         "run_id = excluded.run_id",
		         {sync, run, pg::array_literal(keys), pg::array_literal(cursors), pg::array_literal(ids),
		          pg::array_literal(states)});
		// The range covered: rows of a batch are in cursor order; batches need not be (refused rows,
		// retries), so the ends compare as the cursor's type.
		const std::string &t = events_.cursor_type;
		pg::exec(("UPDATE iterable_audience.sync_runs SET tracked = tracked + $2::bigint, failed = failed + $3::bigint, "
		          "api_requests = api_requests + $4::bigint, rate_limited = rate_limited + $5::bigint, "
		          "cursor_from = CASE WHEN cursor_from IS NULL OR $6::" + t + " < cursor_from::" + t +
		          " THEN $6 ELSE cursor_from END, cursor_to = CASE WHEN cursor_to IS NULL OR $7::" + t + " > cursor_to::" +
		          t + " THEN $7 ELSE cursor_to END WHERE run_id = $1::bigint").c_str(),
		         {run, std::to_string(static_cast<int64_t>(rows.size()) - failed), std::to_string(failed),
		          std::to_string(requests), std::to_string(rate_limited_), rows.front().row.cursor,
		          rows.back().row.cursor});
	});
	rate_limited_ = 0;
	run_.failed_ += failed;
}

void
EventRun::send_track_part(std::vector<Pending> &batch, const std::vector<size_t> &part, int64_t &requests)
{
	std::string body = "{\"events\":[";
	for (size_t i = 0; i < part.size(); i++)
		body += (i ? "," : "") + batch[part[i]].built.json;
	body += "]}";
	int64_t before = requests_;
	HttpResult result = call("/api/events/trackBulk", std::move(body));
	requests += requests_ - before;
	if (call_succeeded(result)) {
		std::vector<SentEvent> sent;
		for (size_t i : part)
			sent.push_back({batch[i].built.email, batch[i].built.user_id, batch[i].built.event_name});
		TrackBulkResult answer;
		try {
			answer = parse_answer(run_.account_, result.body,
			                      [&](const std::string &b) { return parse_track_bulk_response(b, sent); });
		} catch (const ResponseFormatError &e) {
			for (size_t i : part)
				fail(batch[i], "invalid_response",
				     std::string("Iterable answered HTTP 200 with a body that is not trackBulk's result: ") + e.what());
			return;
		}
		for (size_t k = 0; k < part.size() && k < answer.rows.size(); k++)
			if (!answer.rows[k].succeeded)
				fail(batch[part[k]], answer.rows[k].error_code, answer.rows[k].error_message);
		if (answer.unattributed_failures > 0)
			run_.notes_.push_back("Iterable reported " + std::to_string(answer.unattributed_failures) +
			                      " trackBulk failure(s) without naming the event; those events are logged as succeeded");
		return;
	}
	long status = result.outcome == TransportOutcome::Response ? result.status : 0;
	BulkFailure why = classify_track_bulk_failure(status, result.body, part.size());
	std::string message = status ? why.message : describe_call_failure(result);
	auto resend = [&](const std::vector<size_t> &rest) {
		if (!rest.empty())
			send_track_part(batch, rest, requests);
	};
	switch (why.action) {
	case BulkRefusal::Retry:
		for (size_t i : part)
			fail(batch[i], status == 429 ? "rate_limited" : "http_error", message);
		return;
	case BulkRefusal::Fatal:
		throw RunEnded{"failed", "Iterable refused trackBulk (" + message + "); events it acknowledged before are kept"};
	case BulkRefusal::SplitTypes: {
		for (const FieldMismatch &m : why.mismatches)
			message += "; field " + m.field + (m.expected_type.empty() ? "" : " (Iterable expects " + m.expected_type + ")");
		std::vector<std::string> fields;
		for (size_t i : part)
			fields.push_back(data_fields_of(batch[i].built.json));
		std::vector<size_t> suspects = mismatch_suspects(why.mismatches, fields);
		if (suspects.empty() || part.size() == 1) {
			if (part.size() == 1) {
				fail(batch[part[0]], "invalid_data", message);
				return;
			}
			for (size_t i : part)
				resend({i});
			return;
		}
		std::vector<size_t> rest;
		size_t s = 0;
		for (size_t k = 0; k < part.size(); k++) {
			if (s < suspects.size() && suspects[s] == k) {
				fail(batch[part[k]], "invalid_data", message);
				s++;
			} else {
				rest.push_back(part[k]);
			}
		}
		resend(rest);
		return;
	}
	case BulkRefusal::BadRecords: {
		std::vector<size_t> rest;
		for (size_t k = 0; k < part.size(); k++) {
			if (std::binary_search(why.records.begin(), why.records.end(), k))
				fail(batch[part[k]], "invalid_field", message);
			else
				rest.push_back(part[k]);
		}
		if (rest.size() == part.size()) {  // none named in range: one by one
			for (size_t i : part)
				fail(batch[i], "invalid_field", message);
			return;
		}
		resend(rest);
		return;
	}
	case BulkRefusal::TooLarge:
		if (part.size() == 1) {
			fail(batch[part[0]], "too_large", message);
			return;
		}
		resend(std::vector<size_t>(part.begin(), part.begin() + static_cast<long>(part.size() / 2)));
		resend(std::vector<size_t>(part.begin() + static_cast<long>(part.size() / 2), part.end()));
		return;
	case BulkRefusal::SendSingly:
		if (part.size() == 1) {
			fail(batch[part[0]], "http_error", message);
			return;
		}
		for (size_t i : part)
			resend({i});
		return;
	}
}

void
EventRun::send_track(std::vector<Pending> &batch)
{
	int batch_no = ledger_row(batch, false);
	std::vector<size_t> all(batch.size());
	for (size_t i = 0; i < all.size(); i++)
		all[i] = i;
	int64_t requests = 0;
	send_track_part(batch, all, requests);
	record(batch_no, batch, requests);
}

// users/updateEmail is not idempotent: a resend after a lost answer finds the old email gone (400
// not_found) or the new one taken (409 conflict). Its rows are marked in flight, durably, before
// the request; such an answer to a row found in flight from an earlier run is that row's own change.
// Returns, per row, whether an earlier run had sent it without recording the answer.
std::vector<bool>
mark_in_flight(int64_t sync_id, int64_t run_id, const std::vector<Pending> &group)
{
	std::vector<pg::SqlValue> keys, cursors;
	for (const Pending &p : group) {
		keys.emplace_back(p.row.row_key);
		cursors.emplace_back(p.row.cursor.value_or(""));
	}
	std::vector<bool> earlier(group.size(), false);
	pg::in_transaction([&] {
		pg::exec("SET LOCAL synchronous_commit = on");
		pg::AsRole as_extension_owner(pg::extension_owner());
		pg::SqlResult r = pg::exec("SELECT row_key FROM iterable_audience.event_sync_sent WHERE sync_id = $1::bigint "
		                           "AND state = 'in_flight' AND row_key = ANY " + pg::array_param(2, "text"),
		                           {std::to_string(sync_id), pg::array_literal(keys)});
		for (const pg::SqlRow &row : r.rows)
			for (size_t i = 0; i < group.size(); i++)
				if (group[i].row.row_key == *row[0])
					earlier[i] = true;
		pg::exec("INSERT INTO iterable_audience.event_sync_sent (sync_id, row_key, cursor_value, event_id, state, run_id) "
		         "SELECT $1::bigint, k, c, c, 'in_flight', $2::bigint FROM unnest($3::text[], $4::text[]) AS u(k, c) "
		         "ON CONFLICT (sync_id, row_key) DO UPDATE SET state = 'in_flight', run_id = excluded.run_id",
		         {std::to_string(sync_id), std::to_string(run_id), pg::array_literal(keys), pg::array_literal(cursors)});
	});
	return earlier;
}

// One single-record answer mapped to its row. uncertain: an attempt may have been applied unanswered.
void
EventRun::answer_single(Pending &p, const HttpResult &result, bool uncertain, bool resent)
{
	long status = result.outcome == TransportOutcome::Response ? result.status : 0;
	if (call_succeeded(result)) {
		// Iterable answers these with its envelope {"msg", "code", "params"}: anything else cannot be
		// read (most likely applied; a resend of an id replaces, the others are idempotent).
		try {
			parse_answer(run_.account_, result.body, [](const std::string &b) {
				if (!parse_error_envelope(b))
					throw ResponseFormatError("unexpected response from Iterable: " + b.substr(0, 300));
				return true;
			});
		} catch (const ResponseFormatError &e) {
			fail(p, "invalid_response",
			     std::string("Iterable answered HTTP 200 with a body that is not its documented answer: ") + e.what());
			return;
		}
	}
	SingleOutcome outcome = classify_single_response(events_.kind, status, result.body);
	switch (outcome.disposition) {
	case Disposition::Succeeded:
		return;
	case Disposition::Failed:
		if ((resent || uncertain) && (outcome.error_code == "not_found" || outcome.error_code == "conflict") &&
		    events_.kind == EventKind::EmailChange) {
			p.built.note = "the change was made by an earlier request whose answer was lost (Iterable now "
			               "answers: " + outcome.error_message + ")";
			return;
		}
		fail(p, outcome.error_code, outcome.error_message);
		return;
	case Disposition::Retry:
		p.uncertain = status == 0 || status >= 500;
		fail(p, status == 429 ? "rate_limited" : "http_error", status ? outcome.error_message : describe_call_failure(result));
		return;
	case Disposition::Fatal:
		throw RunEnded{"failed", "Iterable refused " + p.built.path + " (" + outcome.error_message +
		                             "); records it acknowledged before are kept"};
	}
}

// The rows of a group, several requests in flight (iterable_audience.max_requests_in_flight), paced
// per project and endpoint. Carts and email changes are states of a user: rows of one user go in
// cursor order, never two at once (an older cart must not land after a newer one).
void
EventRun::send_single(std::vector<Pending> &group)
{
	int batch_no = ledger_row(group, false);
	std::vector<bool> resent(group.size(), false);
	if (events_.kind == EventKind::EmailChange)
		resent = mark_in_flight(run_.sync_.sync_id, run_.request_.run_id, group);
	const bool per_user_order = events_.kind == EventKind::Cart || events_.kind == EventKind::EmailChange;
	const size_t max_in_flight = static_cast<size_t>(std::max(1, settings::max_requests_in_flight));
	const std::string &path = group.front().built.path;  // one endpoint per sync
	SharedPacing pacing(MyDatabaseId, run_.account_.account_id, path,
	                    events_.kind == EventKind::DeviceToken ? kDeviceTokenRps : 0);
	HttpClient &client = HttpClient::process_instance();
	const HttpOptions options = http_options_from_settings();
	PacedAttempts paced(client, pacing);
	auto user_of = [&](const Pending &p) { return p.built.email + "\n" + p.built.user_id; };
	std::vector<bool> sent(group.size(), false);
	std::map<uint64_t, size_t> in_flight;  // tag -> row
	std::set<std::string> busy;            // users with a request in flight
	size_t answered = 0;
	int64_t requests = 0;
	try {
		while (answered < group.size()) {
			while (in_flight.size() < max_in_flight && pacing.may_send()) {
				// The first row not sent whose user has nothing in flight nor an earlier row waiting.
				std::set<std::string> waiting;
				std::optional<size_t> pick;
				for (size_t i = 0; i < group.size() && !pick; i++) {
					if (sent[i])
						continue;
					std::string user = user_of(group[i]);
					if (per_user_order && (busy.count(user) || waiting.count(user))) {
						waiting.insert(user);
						continue;
					}
					pick = i;
				}
				if (!pick)
					break;
				HttpRequest request = iterable_request(run_.account_, "POST", path, group[*pick].built.json);
				request.tag = next_tag_;
				client.submit(std::move(request), options);
				pacing.on_sent();
				sent[*pick] = true;
				busy.insert(user_of(group[*pick]));
				in_flight.emplace(next_tag_++, *pick);
			}
			pg::throw_if_interrupted();
			if (in_flight.empty()) {
				pg_usleep(static_cast<long>(std::clamp(pacing.wait_seconds(), 0.001, 0.1) * 1e6));
				continue;
			}
			for (const HttpResult &result : client.poll(100)) {
				auto it = in_flight.find(result.tag);
				if (it == in_flight.end())
					continue;
				size_t i = it->second;
				in_flight.erase(it);
				busy.erase(user_of(group[i]));
				answered++;
				requests += result.attempts;
				requests_ += result.attempts;
				rate_limited_ += result.rate_limited;
				answer_single(group[i], result, paced.take_uncertain(result.tag), resent[i]);
			}
		}
	} catch (...) {
		client.abort_all();  // the requests in flight are lost; the next run sends those rows again
		throw;
	}
	record(batch_no, group, requests);
}

void
EventRun::handle(std::vector<CursorRow> rows)
{
	std::vector<Pending> refused, sendable;
	for (CursorRow &row : rows) {
		Pending p{std::move(row), {}, {}, {}, false};
		p.built = build_row(options_, run_.sync_, events_, p.row);
		if (!p.built.ok()) {
			fail(p, p.built.error_code, p.built.error_message);
			refused.push_back(std::move(p));
		} else {
			sendable.push_back(std::move(p));
		}
	}
	handled_ += static_cast<int64_t>(refused.size() + sendable.size());
	pg::in_transaction([&] {
		pg::exec("UPDATE iterable_audience.sync_runs SET planned_events = coalesce(planned_events, 0) + $2::bigint, "
		         "records_planned = coalesce(records_planned, 0) + $2::bigint WHERE run_id = $1::bigint",
		         {std::to_string(run_.request_.run_id), std::to_string(refused.size() + sendable.size())});
	});
	if (!refused.empty()) {
		int batch_no = ledger_row(refused, true);
		record(batch_no, refused, 0);
	}
	if (sendable.empty())
		return;
	if (!checked_) {
		record_phase(run_.request_.run_id, "preflight");
		run_.kind_->preflight(run_.sync_, run_.account_, run_.request_.run_id);
		record_phase(run_.request_.run_id, "sending");
		checked_ = true;
	}
	if (events_.kind == EventKind::Track) {
		// The batch_size setting caps trackBulk's events per request too (at most 1000, as peers send).
		TrackBulkBatcher batcher(static_cast<size_t>(std::clamp<int64_t>(settings::batch_size, 1, kChunkRows)));
		std::vector<Pending> batch;
		for (Pending &p : sendable) {
			if (batcher.add(p.built.json) == TrackBulkBatcher::Add::Full) {
				batcher.take();
				send_track(batch);
				batch.clear();
				batcher.add(p.built.json);
			}
			batch.push_back(std::move(p));
		}
		if (!batch.empty())
			send_track(batch);
	} else {
		for (size_t start = 0; start < sendable.size(); start += kSingleGroup) {
			std::vector<Pending> group(std::make_move_iterator(sendable.begin() + static_cast<long>(start)),
			                           std::make_move_iterator(sendable.begin() +
			                                                   static_cast<long>(std::min(sendable.size(), start + kSingleGroup))));
			send_single(group);
		}
	}
	run_.report("sent " + std::to_string(handled_) + " records");
}

void
EventRun::perform()
{
	cursor_.begin();
	const int64_t budget = events_.max_events_per_run.value_or(INT64_MAX);
	auto take = [&](std::vector<CursorRow> rows) {
		if (static_cast<int64_t>(rows.size()) > budget - handled_) {
			rows.resize(static_cast<size_t>(budget - handled_));
		}
		handle(std::move(rows));
	};
	// Rows that failed in earlier runs and may succeed now, then the rows past the cursor.
	for (;;) {
		if (handled_ >= budget)
			break;
		std::vector<CursorRow> rows = cursor_.read_retries(std::min(kChunkRows, budget - handled_));
		if (rows.empty())
			break;
		take(std::move(rows));
	}
	while (handled_ < budget) {
		std::vector<CursorRow> rows = cursor_.read_next(kChunkRows);
		if (rows.empty())
			break;
		int64_t room = budget - handled_;
		if (static_cast<int64_t>(rows.size()) > room) {
			if (rows[static_cast<size_t>(room)].cursor)  // else only rows with a NULL cursor are left
				cursor_.stopped_before(*rows[static_cast<size_t>(room)].cursor);
			rows.resize(static_cast<size_t>(room));
			take(std::move(rows));
			break;
		}
		take(std::move(rows));
		if (handled_ >= budget) {
			// The budget ended with a range: what comes next is unknown until read.
			std::vector<CursorRow> next = cursor_.read_next(1);
			if (!next.empty() && next.front().cursor)
				cursor_.stopped_before(*next.front().cursor);
			break;
		}
	}
	cursor_.finish();
}

void
Run::perform_cursor_run()
{
	EventSyncDefinition events;
	record_phase(request_.run_id, "planning");
	pg::in_transaction([&] {
		check_owner_exists(sync_);
		if (!account_usable_by(account_, sync_.owner))
			throw RunEnded{"failed", "the owner of sync \"" + sync_.name + "\" (" + pg::role_name(sync_.owner) +
			                             ") may no longer use account \"" + account_.name + "\"; grant it again with "
			                             "iterable_audience.grant_account_usage()"};
		events = load_event_definition(sync_.sync_id);
		// Nothing to settle for a sync without snapshots: earlier runs ended are settled as they are.
		pg::AsRole as_extension_owner(pg::extension_owner());
		pg::exec("UPDATE iterable_audience.sync_runs SET settled = true WHERE sync_id = $1::bigint AND NOT settled "
		         "AND run_id <> $2::bigint",
		         {std::to_string(sync_.sync_id), std::to_string(request_.run_id)});
	});
	failures_possible_ = false;
	std::optional<RunEnded> ended;
	EventRun run(*this, events);
	try {
		timed("send", [&] { run.perform(); });
	} catch (const RunEnded &e) {
		ended = e;
	} catch (const pg::PgError &e) {
		ended = RunEnded{"failed", "could not read the event source: " + e.message +
		                               "; events Iterable acknowledged so far are kept. Fix the source."};
	}
	record_phase(request_.run_id, "finishing");
	timed("finish", [&] { finish(ended ? ended->status : (failed_ > 0 ? "succeeded_with_failures" : "succeeded"),
	                             ended ? ended->error : ""); });
	if (!ended)
		timed("retention", [&] { retention(); });
	log_phases();
}

}  // namespace ia
