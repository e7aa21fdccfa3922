// Request pacing shared by every run of the same Iterable project and endpoint (issues 5 and 18):
// Iterable's rate limits are per project and endpoint, so syncs of one account running at once pace
// their requests together, from their first request on.
//
// With the library in shared_preload_libraries, a table of kSlots slots in shared memory holds one
// controller state (core/rate_controller.hpp) per (database, account, endpoint); every run of that
// account and endpoint attaches to the same slot and drives it under a spinlock, reading one clock that
// is the same in every process (CLOCK_MONOTONIC through std::chrono::steady_clock). The table holds
// plain data only: no pointer, descriptor or handle.
//
// A new slot (or a run's own controller) starts at the rate learned by earlier runs, kept in
// iterable_audience.learned_rate (iterable/learned_rate.hpp), else at the endpoint's documented limit
// (a ceiling it never exceeds), else slowly. The rate it learned is written back when the run's
// pacing ends (the destructor; not per request, and not when the run is unwinding from an error).
//
// A run always gets pacing: without preloading (no shared memory), or when every slot belongs to
// another (account, endpoint) used within the last minute, it falls back to a controller of its own
// (shared() says which). A slot idle for over a minute may be taken for another one; a run whose slot
// was taken attaches again (to a fresh slot) at its next call.
//
// Include before pg/postgres.hpp (it includes src/core headers).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/rate_controller.hpp"

namespace ia {

class SharedPacing {
 public:
	// Attach to (or create) the slot of (database, account, endpoint). documented_limit_rps: Iterable's
	// published limit of the endpoint in requests/s (documented_limit() below), 0 = none.
	SharedPacing(uint32_t database_oid, int64_t account_id, std::string_view endpoint, double documented_limit_rps);
	~SharedPacing();  // remembers the learned rate (iterable_audience.learned_rate)
	SharedPacing(const SharedPacing &) = delete;
	SharedPacing &operator=(const SharedPacing &) = delete;

	// May a request start now? True also takes the send slot (atomically, for all runs of the
	// project): the on_sent() that follows only confirms it, and until then may_send() stays true.
	bool may_send();
	// If not, in how many seconds (0 when it may).
	double wait_seconds();
	// A request was started (takes the next send slot unless may_send() already did).
	void on_sent();
	// Every answered attempt, retries included.
	void on_response(bool rate_limited);
	// For HttpClient::set_retry_gate: 0 when a retry of a 429 may start now (its send slot is taken),
	// else the seconds to wait.
	double retry_gate();
	// Current allowed requests/s.
	double rate() const;
	// False when it fell back to a process-local controller.
	bool shared() const { return shared_; }

 private:
	template <typename F>
	void apply(F &&f);

	uint32_t database_oid_;
	int64_t account_id_;
	std::string endpoint_;
	RateStart start_;          // what a fresh state starts from
	bool shared_ = false;
	int slot_ = -1;
	uint64_t generation_ = 0;  // of the slot when this run attached: a taken slot has a new one
	bool reserved_ = false;    // may_send() took a send slot that on_sent() has not used yet
	RateState local_;          // the fallback's state
	double remember_rate_ = 0; // what the state had learned when last seen (written by the destructor)
	double remember_burst_ = 0;
};

// Iterable's published per-project limit of an endpoint in requests/s (reference §5), 0 = none
// published (lists/subscribe and lists/unsubscribe among them).
double documented_limit(std::string_view endpoint);

namespace shared_pacing {

constexpr int kSlots = 128;
constexpr int kEndpointChars = 64;   // endpoint kept in a slot (longer ones are cut: keyed by the prefix)
constexpr double kIdleSeconds = 60;  // a slot unused this long may be taken for another one

// _PG_init while shared_preload_libraries is processed: reserves the table and installs the hooks.
void install_shmem_hooks();

// False when the library was not preloaded (every run paces itself alone).
bool available();

// What one slot shows (iterable_audience.rate_controllers()).
struct SlotInfo {
	uint32_t database_oid = 0;
	int64_t account_id = 0;
	std::string endpoint;
	double rate = 0;              // allowed requests/s
	double accepted_rate = 0;     // requests/s Iterable accepted over the last 2 s
	double wait_seconds = 0;      // until the next request may start
	int64_t requests = 0;         // requests started through the slot (retries are not)
	int64_t responses = 0;        // answered attempts, retries included
	int64_t rate_limited = 0;     // of them answered 429
	double idle_seconds = 0;      // since a run last used the slot
	double estimate = 0;          // measured drain rate of Iterable's bucket, 0 = not measured
	double burst = 0;             // requests let go at once
};

// The slots in use (none without preloading).
std::vector<SlotInfo> read_slots();

}  // namespace shared_pacing

}  // namespace ia
