// The send phase of a run: for each operation of the kind, in its order, the planned records go
// out in batches, each written to the ledger before its request (batch_recording.hpp), several
// requests in flight, paced per project and endpoint (shared_pacing.hpp). Each answer is mapped to
// per-record outcomes by the kind and committed at once. A request Iterable refuses as a whole
// because of one record (SyncKind::whole_request_refusal) is split in halves until that record is
// alone; the batch is recorded once all its parts are answered.
#include <algorithm>
#include <deque>
#include <map>
#include <set>

#include "engine/run.hpp"
#include "iterable/iterable_call.hpp"
#include "iterable/paced_attempts.hpp"
#include "iterable/shared_pacing.hpp"
#include "settings.hpp"

#include "pg/spi.hpp"
#include "pg/transaction.hpp"

extern "C" {
#include "miscadmin.h"
}

namespace ia {

namespace {

// The records of one operation still to send.
struct SendPhase {
	const SendOperation *op;
	int64_t left;                     // rows of this class not yet loaded
	std::string after_row = "(0,0)";  // rows of this class up to this plan row (ctid) are loaded
};

struct Batch {
	int batch_no;
	std::vector<Subscriber> records;  // in the order of the batch's ledger row
};

// A batch whose parts are being sent: its outcome fills as they are answered.
struct OpenBatch {
	Batch batch;
	BatchOutcome outcome;
	int parts_open = 0;
};

// One request: a batch, or part of one (positions in the batch).
struct Part {
	int batch_no;
	std::vector<size_t> positions;
};

}  // namespace

class SendLoop {
 public:
	explicit SendLoop(Run &run) : run_(run), client_(HttpClient::process_instance()),
	                              options_(http_options_from_settings()),
	                              max_in_flight_(static_cast<size_t>(std::max(1, settings::max_requests_in_flight))) {}

	// Sends one operation's records; false when the run must stop (fatal_ says why).
	bool send(SendPhase &phase);
	std::optional<std::string> fatal_;

 private:
	void load_ahead(SendPhase &phase);
	void submit(const Part &part, SharedPacing &pacing);
	void answered(const HttpResult &result, bool uncertain);
	void close_unsent();
	void record_open_batch(int batch_no);  // all its parts answered: the batch's outcome is committed
	// The part's records: the batch's own when the part is all of it, else copied into `storage`.
	const std::vector<Subscriber> &records_of(const Part &part, std::vector<Subscriber> &storage) const;

	Run &run_;
	HttpClient &client_;
	const HttpOptions options_;
	const size_t max_in_flight_;
	const SendOperation *op_ = nullptr;
	std::deque<Batch> ready_;          // loaded and in the ledger, not yet sent
	std::deque<Part> split_parts_;     // halves of a split request, sent before new batches
	std::map<int, OpenBatch> open_;    // by batch_no
	std::map<uint64_t, Part> in_flight_;
	uint64_t next_tag_ = 1;
	int64_t done_ = 0;
	int64_t total_ = 0;
};

// Loads the next batches of a phase (fewer when it runs out), written to the run's ledger in one
// transaction before any of them is sent (batch_recording.hpp): one durable commit for several.
void
SendLoop::load_ahead(SendPhase &phase)
{
	int64_t batch_size = std::max(1, settings::batch_size);
	if (phase.op->limits.max_records > 0)
		batch_size = std::min(batch_size, phase.op->limits.max_records);
	std::vector<int64_t> sizes;
	for (int64_t left = phase.left; left > 0 && sizes.size() < max_in_flight_; left -= batch_size)
		sizes.push_back(std::min(batch_size, left));
	if (sizes.empty())
		return;
	std::vector<LoadedBatch> loaded =
	    load_batches(run_.target_, run_.next_batch_no_, *phase.op, phase.after_row, sizes);
	if (loaded.empty())
		throw pg::UserError(ERRCODE_INTERNAL_ERROR, "the plan lost rows between planning and sending");
	run_.sent_any_ = true;
	const bool with_data = phase.op->batch_class != batch_class::kDepartures;
	for (LoadedBatch &rows : loaded) {
		Batch batch{rows.batch_no, {}};
		run_.next_batch_no_ = rows.batch_no + 1;
		const size_t n = rows.emails.size();
		batch.records.reserve(n);
		for (size_t i = 0; i < n; i++) {
			Subscriber s;
			if (rows.emails[i])
				s.email = std::move(*rows.emails[i]);
			if (i < rows.user_ids.size() && rows.user_ids[i])
				s.user_id = std::move(*rows.user_ids[i]);
			if (with_data && i < rows.data_fields.size() && rows.data_fields[i])
				s.data_fields_json = std::move(*rows.data_fields[i]);
			batch.records.push_back(std::move(s));
		}
		phase.after_row = rows.last_row;
		phase.left -= static_cast<int64_t>(n);
		ready_.push_back(std::move(batch));
	}
}

const std::vector<Subscriber> &
SendLoop::records_of(const Part &part, std::vector<Subscriber> &storage) const
{
	const Batch &batch = open_.at(part.batch_no).batch;
	if (part.positions.size() == batch.records.size())
		return batch.records;
	storage.clear();
	storage.reserve(part.positions.size());
	for (size_t i : part.positions)
		storage.push_back(batch.records[i]);
	return storage;
}

void
SendLoop::submit(const Part &part, SharedPacing &pacing)
{
	std::vector<Subscriber> storage;
	HttpRequest http = iterable_request(run_.account_, "POST", op_->path,
	                                    run_.kind_->request_body(run_.sync_, *op_, records_of(part, storage)));
	http.tag = next_tag_;
	client_.submit(std::move(http), options_);
	pacing.on_sent();
	in_flight_.emplace(next_tag_++, part);
}

// uncertain: an attempt of the request timed out, lost its connection or got a 5xx, so Iterable may
// have applied it unless a later attempt's answer tells.
void
SendLoop::answered(const HttpResult &result, bool uncertain)
{
	auto it = in_flight_.find(result.tag);
	if (it == in_flight_.end())
		return;
	Part part = std::move(it->second);
	in_flight_.erase(it);
	OpenBatch &open = open_.at(part.batch_no);
	BatchOutcome &o = open.outcome;
	o.requests += result.attempts;
	o.rate_limited += result.rate_limited;
	auto fail_all = [&](const std::string &code, const std::string &message) {
		for (size_t i : part.positions)
			o.failures.push_back({i, code, message, true});
	};
	std::vector<Subscriber> storage;
	const std::vector<Subscriber> &records = records_of(part, storage);
	if (call_succeeded(result)) {
		try {
			// parse_answer: an unreadable answer's error text quotes it with the key redacted.
			BulkResponse response = parse_answer(run_.account_, result.body, [&](const std::string &b) {
				return run_.kind_->read_answer(*op_, b, records);
			});
			for (size_t i = 0; i < response.rows.size(); i++) {
				const RowOutcome &row = response.rows[i];
				if (!row.succeeded)
					o.failures.push_back(
					    {part.positions[i], row.error_code, row.error_message, row.error_code != "forgotten"});
			}
			if (response.unattributed_failures > 0)
				run_.notes_.push_back("Iterable reported " + std::to_string(response.unattributed_failures) +
				                      " failure(s) in a batch without naming the record; those records are logged "
				                      "as succeeded");
			// the answer tells, row by row
		} catch (const ResponseFormatError &e) {
			o.outcome_unknown = true;  // a 200: most likely applied, but the rows cannot be told
			fail_all("invalid_response", std::string("Iterable answered HTTP 200 with a body that is not a ") +
			                                 op_->answer_name + " result: " + e.what());
		}
	} else {
		std::string why = describe_call_failure(result);
		bool response = result.outcome == TransportOutcome::Response;
		std::optional<SyncKind::RecordRefusal> refusal;
		std::optional<std::string> fatal;
		o.outcome_unknown = o.outcome_unknown || uncertain;
		if (response && result.status == 401) {
			fatal_ = "Iterable refused the API key of account \"" + run_.account_.name + "\" during the run (" + why +
			         "); set a valid key with iterable_audience.alter_account()";
			fail_all("http_error", why);
		} else if ((fatal = run_.kind_->fatal_answer(run_.sync_, result))) {
			fatal_ = fatal;
			fail_all("http_error", why);
		} else if ((refusal = run_.kind_->whole_request_refusal(result)) && part.positions.size() > 1) {
			// Iterable refused the whole request for one record: send each half apart.
			size_t half = part.positions.size() / 2;
			split_parts_.push_front({part.batch_no, std::vector<size_t>(part.positions.begin() + half, part.positions.end())});
			split_parts_.push_front({part.batch_no, std::vector<size_t>(part.positions.begin(), part.positions.begin() + half)});
			open.parts_open += 2;
		} else if (refusal) {
			fail_all(refusal->error_code, refusal->error_message);
		} else if (response && result.status == 429) {
			fail_all("rate_limited", why);
		} else {
			fail_all("http_error", why);
		}
	}
	if (--open.parts_open == 0)
		record_open_batch(part.batch_no);
}

void
SendLoop::record_open_batch(int batch_no)
{
	BatchOutcome &o = open_.at(batch_no).outcome;
	std::sort(o.failures.begin(), o.failures.end(),
	          [](const RowFailure &a, const RowFailure &b) { return a.index < b.index; });
	pg::in_transaction([&] { record_batch(run_.target_, o); });
	run_.failed_ += static_cast<int64_t>(o.failures.size());
	done_ += o.rows;
	open_.erase(batch_no);
	run_.report("sent " + std::to_string(done_) + " of " + std::to_string(total_) + " records");
}

// Stopped early (fatal): batches loaded ahead were never sent and leave the ledger; the halves of a
// split batch not sent fail without having reached Iterable, and the batch is recorded.
void
SendLoop::close_unsent()
{
	if (!ready_.empty()) {
		std::vector<int> unsent;
		for (const Batch &batch : ready_) {
			unsent.push_back(batch.batch_no);
			open_.erase(batch.batch_no);
		}
		ready_.clear();
		pg::in_transaction([&] { forget_unsent_batches(run_.target_, unsent); });
	}
	for (const Part &part : split_parts_) {
		OpenBatch &open = open_.at(part.batch_no);
		for (size_t i : part.positions)
			open.outcome.failures.push_back({i, "http_error", "not sent: " + *fatal_, true});
		if (--open.parts_open == 0)
			record_open_batch(part.batch_no);
	}
	split_parts_.clear();
}

bool
SendLoop::send(SendPhase &phase)
{
	op_ = phase.op;
	total_ = run_.planned_total();
	// Paces requests from the first one (few limits are published, 429s come with no Retry-After);
	// every attempt, retries included, informs it. Iterable's limits are per project
	// and endpoint: every run of this account shares one controller per endpoint (shared_pacing.hpp),
	// or paces alone without preloading.
	// It also paces the retries of 429s (the client's retry gate); when it ends (this phase), it
	// remembers the learned rate (iterable_audience.learned_rate).
	SharedPacing pacing(MyDatabaseId, run_.account_.account_id, op_->path, op_->limits.documented_rps);
	PacedAttempts paced(client_, pacing);
	try {
		for (;;) {
			while (!fatal_ && in_flight_.size() < max_in_flight_ &&
			       (!split_parts_.empty() || phase.left > 0 || !ready_.empty()) && pacing.may_send()) {
				if (!split_parts_.empty()) {
					Part part = std::move(split_parts_.front());
					split_parts_.pop_front();
					submit(part, pacing);
					continue;
				}
				if (ready_.empty())
					load_ahead(phase);
				Batch batch = std::move(ready_.front());
				ready_.pop_front();
				Part whole{batch.batch_no, {}};
				whole.positions.resize(batch.records.size());
				for (size_t i = 0; i < whole.positions.size(); i++)
					whole.positions[i] = i;
				OpenBatch open{std::move(batch), {}, 1};
				open.outcome = BatchOutcome{open.batch.batch_no, static_cast<int64_t>(open.batch.records.size()),
				                            op_->done_column, {}, 0, 0, false};
				open_.emplace(whole.batch_no, std::move(open));
				submit(whole, pacing);
			}
			bool more = !fatal_ && (!split_parts_.empty() || phase.left > 0 || !ready_.empty());
			if (in_flight_.empty() && !more)
				break;
			pg::throw_if_interrupted();
			int wait_ms = 100;
			if (more && in_flight_.size() < max_in_flight_)
				wait_ms = std::clamp(static_cast<int>(pacing.wait_seconds() * 1000), 1, 100);
			if (in_flight_.empty()) {
				pg_usleep(wait_ms * 1000L);  // paced, nothing to wait for: poll() would return at once
				continue;
			}
			for (const HttpResult &result : client_.poll(wait_ms))
				answered(result, paced.take_uncertain(result.tag));
		}
	} catch (...) {
		client_.abort_all();  // the batches in flight are lost; the next run sends them again
		throw;
	}
	if (fatal_)
		close_unsent();
	return !fatal_;
}

void
Run::send()
{
	SendLoop loop(*this);
	const std::vector<SendOperation> &ops = kind_->operations();
	for (size_t i = 0; i < ops.size(); i++) {
		if (planned_[i] == 0)
			continue;
		if (ops[i].path == nullptr) {  // nothing to send: recorded for the snapshot only
			record_local_operation(target_, next_batch_no_++, ops[i]);
			sent_any_ = true;
			continue;
		}
		SendPhase phase{&ops[i], planned_[i]};
		if (!loop.send(phase))
			throw RunEnded{"failed", *loop.fatal_ + "; records Iterable acknowledged before that are kept"};
	}
}

}  // namespace ia
