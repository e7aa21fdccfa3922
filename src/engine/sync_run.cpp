#include <algorithm>
#include <chrono>
#include <deque>
#include <map>
#include <set>

#include "definitions/account_store.hpp"
#include "engine/batch_recording.hpp"
#include "core/iterable_json.hpp"
#include "iterable/iterable_call.hpp"
#include "engine/memory_usage.hpp"
#include "engine/run_launcher.hpp"
#include "engine/run_preparation.hpp"
#include "engine/run_progress.hpp"
#include "iterable/shared_pacing.hpp"
#include "settings.hpp"
#include "engine/snapshot_tables.hpp"
#include "engine/source_changes.hpp"
#include "definitions/sync_definition.hpp"
#include "engine/sync_lock.hpp"
#include "engine/sync_run.hpp"
#include "definitions/sync_schedule.hpp"

#include "pg/roles.hpp"
#include "pg/spi.hpp"
#include "pg/transaction.hpp"

extern "C" {
#include "pgstat.h"
}

namespace ia {

namespace {

const char *const kPlanTable = "pg_temp.ia_plan";

// Ends a run early with a status and the reason (a whole-run failure, or the removal guard).
struct RunEnded {
	std::string status;
	std::string error;
};

// The rows of one class still to send: class 0 (unsubscribes), then class 1 (subscribes).
struct SendPhase {
	bool unsubscribe;
	int64_t left;                   // rows of this class not yet loaded
	std::string after_row = "(0,0)";  // rows of this class up to this plan row (ctid) are loaded
};

struct Batch {
	int batch_no;
	bool unsubscribe;
	std::vector<Subscriber> subscribers;  // in the order of the batch's ledger row
};

class Run {
 public:
	explicit Run(const RunRequest &request) : request_(request) {}
	void perform();

 private:
	bool claim();
	void settle_earlier_runs();
	void plan();
	void check_removal_guard();
	void preflight();
	void send();
	void load_ahead(SendPhase &phase, size_t count, std::deque<Batch> &ready);
	std::string request_body(const Batch &batch) const;
	BatchOutcome judge(const Batch &batch, const HttpResult &result, bool uncertain_attempt,
	                   std::optional<std::string> &fatal);
	void finish(const std::string &status, const std::string &error);

 public:
	void settle_after_interrupt();

 private:
	void retention();
	void report(const std::string &what);
	std::string run_label() const;

	RunRequest request_;
	SyncDefinition sync_;
	Account account_;
	RunTarget target_;
	std::optional<std::string> previous_snapshot_;
	int next_batch_no_ = 1;
	bool sent_any_ = false;  // a batch was written to the ledger: the run has a snapshot to build
	int64_t planned_subscribes_ = 0;
	int64_t planned_unsubscribes_ = 0;
	int64_t refused_ = 0;
	int64_t list_size_ = 0;
	int64_t failed_ = 0;
	bool failures_possible_ = true;
	bool read_source_ = false;  // prepare_source_read() ran: finish() records what the read saw
	std::vector<std::string> notes_;  // said in the run's error column even when it succeeds
	std::vector<std::pair<const char *, double>> phases_;  // seconds per phase, logged at the end

	template <typename F>
	void timed(const char *phase, F &&f)
	{
		auto start = std::chrono::steady_clock::now();
		f();
		sample_private_memory();
		phases_.emplace_back(phase, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
	}
	void log_phases();
};

std::string
run_status_for(int64_t failed)
{
	return failed > 0 ? "succeeded_with_failures" : "succeeded";
}

std::string
Run::run_label() const
{
	return "run " + std::to_string(request_.run_id) + " of sync \"" + sync_.name + "\"";
}

void
Run::report(const std::string &what)
{
	sample_private_memory();
	std::string text = "iterable_audience: " + run_label() + ": " + what;
	pg::guard([&] { pgstat_report_activity(STATE_RUNNING, text.c_str()); });
}

bool
Run::claim()
{
	return pg::in_transaction([&] {
		if (!try_lock_sync_for_run(request_.sync_id))
			return false;
		// Holding the lock, any other 'running' run of this sync is a leftover of a crash.
		fail_stale_runs(request_.sync_id);
		sync_ = load_sync_by_id(request_.sync_id);
		account_ = load_account(sync_.account_name, true);
		pg::exec("INSERT INTO iterable_audience.sync_runs (run_id, sync_id, sync_name, trigger, status, forced) "
		         "OVERRIDING SYSTEM VALUE VALUES ($1::bigint, $2::bigint, $3, $4, 'running', $5::boolean)",
		         {std::to_string(request_.run_id), std::to_string(sync_.sync_id), sync_.name,
		          request_.scheduled ? "schedule" : "manual", request_.force ? "true" : "false"});
		std::string app = "iterable_audience sync " + sync_.name;
		pg::guard([&] { SetConfigOption("application_name", app.c_str(), PGC_USERSET, PGC_S_SESSION); });
		return true;
	});
}

// Builds the snapshots of earlier runs that ended before building theirs (a crash, an interrupt):
// the plan must start from what those runs may have applied.
void
Run::settle_earlier_runs()
{
	pg::in_transaction([&] {
		for (int64_t run : unsettled_runs(sync_.sync_id)) {
			report("settling run " + std::to_string(run) + ", which ended before recording its snapshot");
			fill_run_snapshot(sync_.sync_id, sync_.name, run, sync_.owner, latest_snapshot_table(sync_.sync_id));
		}
	});
}

void
Run::plan()
{
	report("reading the audience");
	prepare_source_read(sync_, request_.run_id);
	read_source_ = true;
	pg::in_transaction([&] {
		check_owner_exists(sync_);
		if (!account_usable_by(account_, sync_.owner))
			throw pg::UserError(ERRCODE_INSUFFICIENT_PRIVILEGE,
			                    "the owner of sync \"" + sync_.name + "\" (" + pg::role_name(sync_.owner) +
			                        ") may no longer use account \"" + account_.name + "\"",
			                    "Grant it again with iterable_audience.grant_account_usage('" + account_.name +
			                        "', '" + pg::role_name(sync_.owner) + "').");
		previous_snapshot_ = latest_snapshot_table(sync_.sync_id);
		list_size_ = latest_snapshot_rows(sync_.sync_id);
		failures_possible_ = pg::exec_scalar("SELECT EXISTS (SELECT 1 FROM iterable_audience.record_failure "
		                                     "WHERE sync_id = $1::bigint)",
		                                     {std::to_string(sync_.sync_id)}, true) == pg::SqlValue("t");
		timed("diff", [&] { build_plan(sync_, kPlanTable, previous_snapshot_, list_size_, failures_possible_); });
		pg::SqlResult counts = pg::exec(
		    "SELECT count(*) FILTER (WHERE batch_class = 1), count(*) FILTER (WHERE batch_class = 0), "
		    "count(*) FILTER (WHERE batch_class = 2), "
		    // The audience's size without reading it again: the list, minus records that left it, plus
		    // those that joined it, plus the rows refused.
		    "count(*) FILTER (WHERE valid AND batch_class IN (1, 3) AND prev_hash IS NULL) "
		    "- count(*) FILTER (WHERE valid AND operation = 'delete') + count(*) FILTER (WHERE NOT valid) "
		    "FROM pg_temp.ia_plan");
		planned_subscribes_ = std::stoll(*counts.at(0, 0));
		planned_unsubscribes_ = std::stoll(*counts.at(0, 1));
		refused_ = std::stoll(*counts.at(0, 2));
		int64_t audience_rows = list_size_ + std::stoll(*counts.at(0, 3));
		pg::exec("UPDATE iterable_audience.sync_runs SET audience_rows = $2::bigint, planned_subscribes = $3::bigint, "
		         "planned_unsubscribes = $4::bigint WHERE run_id = $1::bigint",
		         {std::to_string(request_.run_id), std::to_string(audience_rows), std::to_string(planned_subscribes_),
		          std::to_string(planned_unsubscribes_)});
	});
}

void
Run::check_removal_guard()
{
	if (request_.force || planned_unsubscribes_ == 0 || list_size_ == 0)
		return;
	double fraction = static_cast<double>(planned_unsubscribes_) / static_cast<double>(list_size_);
	if (fraction <= sync_.max_removal_fraction)
		return;
	char text[512];
	snprintf(text, sizeof(text),
	         "blocked by the removal guard: this run would unsubscribe %lld of the list's %lld members (%.1f%%), "
	         "more than max_removal_fraction (%.1f%%); nothing was sent. If the audience really shrank, send it "
	         "with iterable_audience.run_sync('%s', force => true)",
	         static_cast<long long>(planned_unsubscribes_), static_cast<long long>(list_size_), fraction * 100,
	         sync_.max_removal_fraction * 100, sync_.name.c_str());
	throw RunEnded{"blocked", text};
}

void
Run::preflight()
{
	report("checking the API key and the list");
	HttpResult result = call_iterable(iterable_request(account_, "GET", "/api/lists"), http_options_from_settings());
	pg::in_transaction([&] {
		pg::exec("UPDATE iterable_audience.sync_runs SET api_requests = api_requests + $2::bigint, "
		         "rate_limited = rate_limited + $3::bigint WHERE run_id = $1::bigint",
		         {std::to_string(request_.run_id), std::to_string(result.attempts), std::to_string(result.rate_limited)});
	});
	if (!call_succeeded(result)) {
		std::string why = describe_call_failure(result);
		if (result.outcome == TransportOutcome::Response && result.status == 401)
			throw RunEnded{"failed", "Iterable refused the API key of account \"" + account_.name + "\" (" + why +
			                             "); nothing was sent. Set a valid server-side key with "
			                             "iterable_audience.alter_account('" + account_.name + "', api_key => ...)"};
		throw RunEnded{"failed", "could not reach Iterable for account \"" + account_.name + "\": " + why +
		                             "; nothing was sent, the next run tries again"};
	}
	std::vector<ListInfo> lists;
	try {
		lists = parse_lists_response(result.body);
	} catch (const ResponseFormatError &e) {
		throw RunEnded{"failed", std::string("Iterable's answer to GET /api/lists is not in the documented shape (") +
		                             e.what() + "); nothing was sent"};
	}
	bool found = std::any_of(lists.begin(), lists.end(), [&](const ListInfo &l) { return l.id == sync_.list_id; });
	if (!found)
		throw RunEnded{"failed", "list " + std::to_string(sync_.list_id) + " no longer exists in the Iterable project of "
		                             "account \"" + account_.name + "\"; nothing was sent. Point the sync at a list with "
		                             "iterable_audience.alter_sync('" + sync_.name +
		                             "', list_id => ...) or new_list_name => ..."};
}

// Loads the next `count` batches of a phase (fewer when it runs out) into `ready`, written to the
// run's ledger in one transaction before any of them is sent (batch_recording.hpp): one durable
// commit for several batches.
void
Run::load_ahead(SendPhase &phase, size_t count, std::deque<Batch> &ready)
{
	const int64_t batch_size = std::max(1, settings::batch_size);
	std::vector<int64_t> sizes;
	for (int64_t left = phase.left; left > 0 && sizes.size() < count; left -= batch_size)
		sizes.push_back(std::min(batch_size, left));
	if (sizes.empty())
		return;
	std::vector<LoadedBatch> loaded = load_batches(target_, next_batch_no_, phase.unsubscribe, phase.after_row, sizes);
	if (loaded.empty())
		throw pg::UserError(ERRCODE_INTERNAL_ERROR, "the plan lost rows between planning and sending");
	sent_any_ = true;
	for (LoadedBatch &rows : loaded) {
		Batch batch{rows.batch_no, phase.unsubscribe, {}};
		next_batch_no_ = rows.batch_no + 1;
		const size_t n = rows.emails.size();
		batch.subscribers.reserve(n);
		for (size_t i = 0; i < n; i++) {
			Subscriber s;
			if (rows.emails[i])
				s.email = std::move(*rows.emails[i]);
			if (i < rows.user_ids.size() && rows.user_ids[i])
				s.user_id = std::move(*rows.user_ids[i]);
			if (!phase.unsubscribe && i < rows.data_fields.size() && rows.data_fields[i])
				s.data_fields_json = std::move(*rows.data_fields[i]);
			batch.subscribers.push_back(std::move(s));
		}
		phase.after_row = rows.last_row;
		phase.left -= static_cast<int64_t>(n);
		ready.push_back(std::move(batch));
	}
}

std::string
Run::request_body(const Batch &batch) const
{
	std::string body;
	body.reserve(batch.subscribers.size() * 96);
	if (batch.unsubscribe)
		append_unsubscribe_body(body, sync_.list_id, batch.subscribers, sync_.campaign_id, sync_.channel_unsubscribe);
	else
		append_subscribe_body(body, sync_.list_id, batch.subscribers, sync_.update_existing_users_only);
	return body;
}

// uncertain_attempt: an attempt at the batch timed out, lost its connection or got a 5xx, so Iterable
// may have applied it unless a later attempt's answer tells.
BatchOutcome
Run::judge(const Batch &batch, const HttpResult &result, bool uncertain_attempt, std::optional<std::string> &fatal)
{
	BatchOutcome o{batch.batch_no, static_cast<int64_t>(batch.subscribers.size()), batch.unsubscribe, {},
	               result.attempts, result.rate_limited, uncertain_attempt};
	auto fail_all = [&](const std::string &code, const std::string &message) {
		for (size_t i = 0; i < batch.subscribers.size(); i++)
			o.failures.push_back({i, code, message, true});
	};
	if (call_succeeded(result)) {
		try {
			BulkResponse response = parse_bulk_response(
			    result.body, batch.subscribers, batch.unsubscribe ? BulkAction::Unsubscribe : BulkAction::Subscribe);
			for (size_t i = 0; i < response.rows.size(); i++) {
				const RowOutcome &row = response.rows[i];
				if (!row.succeeded)
					o.failures.push_back({i, row.error_code, row.error_message, row.error_code != "forgotten"});
			}
			if (response.unattributed_failures > 0)
				notes_.push_back("Iterable reported " + std::to_string(response.unattributed_failures) +
				                 " failure(s) in a batch without naming the record; those records are logged as "
				                 "succeeded");
			o.outcome_unknown = false;  // the answer tells, row by row
		} catch (const ResponseFormatError &e) {
			o.outcome_unknown = true;  // a 200: most likely applied, but the rows cannot be told
			fail_all("invalid_response",
			         std::string("Iterable answered HTTP 200 with a body that is not a list update result: ") + e.what());
		}
		return o;
	}
	std::string why = describe_call_failure(result);
	bool response = result.outcome == TransportOutcome::Response;
	if (response && result.status == 401) {
		fatal = "Iterable refused the API key of account \"" + account_.name + "\" during the run (" + why +
		        "); set a valid key with iterable_audience.alter_account()";
		fail_all("http_error", why);
	} else if (response && result.status == 400 && result.body.find("invalidListId") != std::string::npos) {
		fatal = "list " + std::to_string(sync_.list_id) + " no longer exists in Iterable (it was deleted during the run: " +
		        why + "); point the sync at a list with iterable_audience.alter_sync()";
		fail_all("http_error", why);
	} else if (response && result.status == 429) {
		fail_all("rate_limited", why);
	} else {
		fail_all("http_error", why);
	}
	return o;
}

void
Run::send()
{
	HttpClient &client = HttpClient::process_instance();
	const HttpOptions options = http_options_from_settings();
	const size_t max_in_flight = static_cast<size_t>(std::max(1, settings::max_requests_in_flight));
	// Unsubscribes first: a record whose key changed is unsubscribed under the old key before the same
	// user is subscribed under the new one.
	SendPhase phases[2] = {{true, planned_unsubscribes_}, {false, planned_subscribes_}};
	std::deque<Batch> ready;  // loaded and in the ledger, not yet sent
	std::map<uint64_t, Batch> in_flight;
	uint64_t next_tag = 1;
	std::optional<std::string> fatal;
	int64_t done = 0;
	const int64_t total = planned_subscribes_ + planned_unsubscribes_;
	// Paces requests once Iterable answers 429 (its limits are not published and come with no
	// Retry-After); every attempt, retries included, informs it. Iterable's limit is per project: every
	// run of this account shares one controller (shared_pacing.hpp), or paces alone without preloading.
	SharedPacing pacing(MyDatabaseId, account_.account_id);
	std::set<uint64_t> uncertain;  // tags of batches an attempt of which Iterable may have applied unanswered
	client.set_attempt_observer([&](const AttemptInfo &attempt) {
		bool answered = attempt.outcome.transport == TransportOutcome::Response;
		if (answered)
			pacing.on_response(attempt.outcome.status == 429);
		if (!answered || attempt.outcome.status >= 500)
			uncertain.insert(attempt.tag);
	});

	try {
		for (SendPhase &phase : phases) {
			for (;;) {
				while (!fatal && in_flight.size() < max_in_flight && (phase.left > 0 || !ready.empty()) &&
				       pacing.may_send()) {
					if (ready.empty())
						load_ahead(phase, max_in_flight, ready);
					Batch batch = std::move(ready.front());
					ready.pop_front();
					HttpRequest http = iterable_request(
					    account_, "POST", phase.unsubscribe ? "/api/lists/unsubscribe" : "/api/lists/subscribe",
					    request_body(batch));
					http.tag = next_tag;
					client.submit(std::move(http), options);
					pacing.on_sent();
					in_flight.emplace(next_tag++, std::move(batch));
				}
				bool more = !fatal && (phase.left > 0 || !ready.empty());
				if (in_flight.empty() && !more)
					break;
				pg::throw_if_interrupted();
				int wait_ms = 100;
				if (more && in_flight.size() < max_in_flight)
					wait_ms = std::clamp(static_cast<int>(pacing.wait_seconds() * 1000), 1, 100);
				if (in_flight.empty()) {
					pg_usleep(wait_ms * 1000L);  // paced, nothing to wait for: poll() would return at once
					continue;
				}
				for (const HttpResult &result : client.poll(wait_ms)) {
					auto it = in_flight.find(result.tag);
					if (it == in_flight.end())
						continue;
					Batch batch = std::move(it->second);
					in_flight.erase(it);
					BatchOutcome outcome = judge(batch, result, uncertain.erase(result.tag) > 0, fatal);
					pg::in_transaction([&] { record_batch(target_, outcome); });
					failed_ += static_cast<int64_t>(outcome.failures.size());
					done += static_cast<int64_t>(batch.subscribers.size());
					report("sent " + std::to_string(done) + " of " + std::to_string(total) + " records");
				}
			}
			if (fatal)
				break;
		}
	} catch (...) {
		client.set_attempt_observer(nullptr);
		client.abort_all();  // the batches in flight are lost; the next run sends them again
		throw;
	}
	client.set_attempt_observer(nullptr);
	if (!ready.empty()) {
		// Stopped early (fatal): batches loaded ahead were never sent; they leave the ledger.
		std::vector<int> unsent;
		for (const Batch &batch : ready)
			unsent.push_back(batch.batch_no);
		pg::in_transaction([&] { forget_unsent_batches(target_, unsent); });
	}
	if (fatal)
		throw RunEnded{"failed", *fatal + "; records Iterable acknowledged before that are kept"};
}

void
Run::finish(const std::string &status, const std::string &error)
{
	std::string text = error;
	for (const std::string &note : notes_)
		text += (text.empty() ? "" : "; ") + note;
	pg::in_transaction([&] {
		if (sent_any_) {
			report("recording the snapshot");
			fill_run_snapshot(sync_.sync_id, sync_.name, request_.run_id, sync_.owner, previous_snapshot_);
		}
		pg::exec("UPDATE iterable_audience.sync_runs SET status = $2, finished_at = clock_timestamp(), "
		         "error = nullif($3, ''), snapshot_table = coalesce(snapshot_table, $4), settled = true "
		         "WHERE run_id = $1::bigint",
		         {std::to_string(request_.run_id), status, text, previous_snapshot_});
		bool completed = status == "succeeded" || status == "succeeded_with_failures";
		if (read_source_)
			record_source_read(sync_, request_.run_id, completed && failed_ == refused_);
		std::optional<std::string> next = next_run_at_text(sync_.schedule);
		pg::exec("UPDATE iterable_audience.sync SET reset_pending = reset_pending AND NOT $2::boolean, "
		         "next_run_at = CASE WHEN paused THEN NULL ELSE to_timestamp($3::double precision) END "
		         "WHERE sync_id = $1::bigint",
		         {std::to_string(sync_.sync_id), completed ? "true" : "false", next});
	});
}

void
Run::retention()
{
	// A separate transaction with a lock timeout: a snapshot table someone is reading must not stall
	// the run; it is dropped at a later run instead.
	try {
		pg::in_transaction([&] {
			pg::exec("SET LOCAL lock_timeout = '5s'");
			// Never this run's own logs (with 0 days they would be gone as soon as written), nor the
			// batches of a run not yet settled into a snapshot (snapshot_tables.hpp).
			pg::exec("DELETE FROM iterable_audience.sync_batch WHERE sync_id = $1::bigint AND run_id <> $3::bigint "
			         "AND coalesce(answered_at, created_at) < now() - make_interval(days => $2::integer) "
			         "AND (kind = 'refused' OR EXISTS (SELECT 1 FROM iterable_audience.sync_runs r "
			         "WHERE r.run_id = sync_batch.run_id AND r.settled))",
			         {std::to_string(sync_.sync_id), std::to_string(sync_.sync_log_retention_days),
			          std::to_string(request_.run_id)});
			drop_snapshot_tables(sync_.sync_id, sync_.snapshot_retention);
			// Failures of records that left both the audience and the list are moot. A record of the
			// audience with a remembered failure is always in the plan (sent again, skipped or refused).
			if (failures_possible_ || refused_ > 0) {
				std::string snapshot = latest_snapshot_table(sync_.sync_id).value_or("");
				pg::exec(("DELETE FROM iterable_audience.record_failure f WHERE f.sync_id = " +
				          std::to_string(sync_.sync_id) +
				          " AND NOT EXISTS (SELECT 1 FROM pg_temp.ia_plan p WHERE p.record_key = f.record_key)" +
				          (snapshot.empty() ? std::string()
				                            : " AND NOT EXISTS (SELECT 1 FROM " + snapshot +
				                                  " s WHERE s.record_key = f.record_key)"))
				             .c_str());
			}
		});
	} catch (const pg::PgError &e) {
		std::string message = e.message;
		pg::guard([&] { ereport(WARNING, (errmsg("iterable_audience: retention after %s skipped: %s", run_label().c_str(), message.c_str()))); });
	}
	prune_source_changes();
}

void
Run::perform()
{
	if (!claim())
		return;  // another run of this sync holds it; the caller reports that
	timed("settle", [&] { settle_earlier_runs(); });
	if (!request_.force) {
		// Nothing changed since the last run sent everything: done without reading the source.
		std::optional<int64_t> idle;
		timed("idle check", [&] {
			idle = pg::in_transaction([&] {
				std::optional<int64_t> read_by = idle_since_run(sync_);
				if (read_by) {
					previous_snapshot_ = latest_snapshot_table(sync_.sync_id);
					record_idle_run(request_.run_id, *read_by);
				}
				return read_by;
			});
		});
		if (idle) {
			timed("finish", [&] { finish("succeeded", ""); });
			pg::guard([&] {
				ereport(LOG, (errmsg("iterable_audience: %s: idle, the source has not changed since run %lld read it",
				                     run_label().c_str(), static_cast<long long>(*idle))));
			});
			prune_source_changes();
			log_phases();
			return;
		}
	}
	record_phase(request_.run_id, "planning");
	try {
		timed("plan", [&] { plan(); });
	} catch (const pg::PgError &e) {
		throw RunEnded{"failed", "could not read the audience source: " + e.message +
		                             "; nothing was sent and no one was unsubscribed. Fix the source or change it with "
		                             "iterable_audience.alter_sync('" + sync_.name + "', source => ...)"};
	} catch (const pg::UserError &e) {
		throw RunEnded{"failed", std::string(e.what()) + "; nothing was sent and no one was unsubscribed" +
		                             (e.hint.empty() ? std::string() : ". " + e.hint)};
	}
	record_planned_records(request_.run_id, planned_subscribes_ + planned_unsubscribes_ + refused_);
	check_removal_guard();
	target_ = RunTarget{request_.run_id, sync_.sync_id, kPlanTable, sync_.retain_sync_logs, failures_possible_};
	pg::in_transaction([&] {
		int64_t refused = record_refused_rows(target_);
		failed_ += refused;
		target_.failures_possible = target_.failures_possible || refused > 0;  // refused rows are remembered
	});
	std::optional<RunEnded> ended;
	if (planned_subscribes_ + planned_unsubscribes_ > 0) {
		record_phase(request_.run_id, "preflight");
		timed("preflight", [&] { preflight(); });
		pg::in_transaction([&] { create_snapshot_shell(sync_.sync_id, sync_.name, request_.run_id, sync_.owner); });
		record_phase(request_.run_id, "sending");
		try {
			timed("send", [&] { send(); });
		} catch (const RunEnded &e) {
			ended = e;  // Iterable refused the run during the send: what it acknowledged is recorded
		}
	}
	record_phase(request_.run_id, "finishing");
	timed("finish", [&] { finish(ended ? ended->status : run_status_for(failed_), ended ? ended->error : ""); });
	if (!ended)
		timed("retention", [&] { retention(); });
	log_phases();
}

// Interrupted (cancel, SIGTERM) while sending: builds the run's snapshot now, with the batches in
// flight in doubt, rather than leave it to the next run, so that what analysts read is current. If
// even that fails, the next run settles the run (snapshot_tables.hpp).
void
Run::settle_after_interrupt()
{
	if (!sent_any_)
		return;
	HOLD_INTERRUPTS();
	try {  // send() aborted the requests in flight before the interrupt reached here
		pg::in_transaction(
		    [&] { fill_run_snapshot(sync_.sync_id, sync_.name, request_.run_id, sync_.owner, previous_snapshot_); });
	} catch (const std::exception &e) {
		std::string message = e.what();
		RESUME_INTERRUPTS();
		pg::guard([&] { ereport(WARNING, (errmsg("iterable_audience: %s: the next run records its snapshot: %s", run_label().c_str(), message.c_str()))); });
		return;
	}
	RESUME_INTERRUPTS();
}

// One LOG line with the time of each phase ("plan" includes "diff", which reads the audience).
void
Run::log_phases()
{
	std::string text;
	char part[64];
	for (const auto &[phase, seconds] : phases_) {
		snprintf(part, sizeof(part), "%s%s %.3f s", text.empty() ? "" : ", ", phase, seconds);
		text += part;
	}
	pg::guard([&] {
		ereport(LOG, (errmsg("iterable_audience: run %lld phases: %s", static_cast<long long>(request_.run_id),
		                     text.c_str())));
	});
}

// Records a run that ended early, even while a terminate request is pending.
void
record_ended_run(int64_t run_id, const RunEnded &ended)
{
	HOLD_INTERRUPTS();
	try {
		pg::in_transaction([&] {
			pg::exec("UPDATE iterable_audience.sync_runs SET status = $2, finished_at = clock_timestamp(), error = $3 "
			         "WHERE run_id = $1::bigint AND status = 'running'",
			         {std::to_string(run_id), ended.status, ended.error});
		});
	} catch (const std::exception &e) {
		std::string message = e.what();
		RESUME_INTERRUPTS();
		pg::guard([&] { ereport(WARNING, (errmsg("iterable_audience: could not record the end of run %lld: %s", static_cast<long long>(run_id), message.c_str()))); });
		return;
	}
	RESUME_INTERRUPTS();
}

}  // namespace

const char *const kRunInterruptedError =
    "interrupted: the run was cancelled or the server is shutting down; records Iterable acknowledged so far are "
    "kept and the next run converges";

void
perform_run(const RunRequest &request)
{
	std::optional<RunEnded> ended;
	Run run(request);
	try {
		run.perform();
	} catch (const RunEnded &e) {
		ended = e;
	} catch (const pg::Interrupted &) {
		ended = RunEnded{"failed", kRunInterruptedError};
		run.settle_after_interrupt();
	} catch (const pg::PgError &e) {
		ended = RunEnded{"failed", e.message};
	} catch (const pg::UserError &e) {
		ended = RunEnded{"failed", e.what()};
	} catch (const std::exception &e) {
		ended = RunEnded{"failed", std::string("internal error: ") + e.what()};
	}
	if (ended)
		record_ended_run(request.run_id, *ended);
}

}  // namespace ia
