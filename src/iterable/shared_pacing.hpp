// Request pacing shared by every run of the same Iterable project (issue #5): Iterable's rate limit is
// per project, so two syncs of one account running at once must pace themselves together.
//
// With the library in shared_preload_libraries, a table of kSlots slots in shared memory holds one
// AIMD controller state (core/rate_controller.hpp) per (database, account, endpoint): Iterable's
// limits are per project and per endpoint (5 req/s for users/bulkUpdate, others unpublished), so
// each endpoint of a project is paced apart. Every run of that account and endpoint attaches to the
// same slot and drives it under a spinlock, reading one clock that is the same in
// every process (CLOCK_MONOTONIC through std::chrono::steady_clock). The table holds plain data only:
// no pointer, descriptor or handle.
//
// A run always gets pacing: without preloading (no shared memory), or when every slot belongs to
// another account used within the last minute, it falls back to a controller of its own (shared()
// says which). A slot idle for over a minute may be taken for another account; a run whose slot was
// taken attaches again (to a fresh slot) at its next call.
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
	// Attach to (or create) the slot of (database, account, endpoint). documented_limit_rps is the
	// endpoint's published limit (0 = none), stored with the slot; the endpoint is cut to
	// shared_pacing::kEndpointBytes - 1 bytes.
	SharedPacing(uint32_t database_oid, int64_t account_id, std::string_view endpoint, double documented_limit_rps);
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
	// Current allowed requests/s (infinity until the first 429).
	double rate() const;
	// False when it fell back to a process-local controller.
	bool shared() const { return shared_; }

 private:
	template <typename F>
	void apply(F &&f);

	uint32_t database_oid_;
	int64_t account_id_;
	char endpoint_[64];  // shared_pacing::kEndpointBytes, NUL-padded
	double documented_limit_rps_;
	bool shared_ = false;
	int slot_ = -1;
	uint64_t generation_ = 0;  // of the slot when this run attached: a taken slot has a new one
	bool reserved_ = false;    // may_send() took a send slot that on_sent() has not used yet
	RateState local_;          // the fallback's state
};

namespace shared_pacing {

constexpr int kSlots = 64;
constexpr size_t kEndpointBytes = 64;  // an endpoint path in a slot, NUL included
constexpr double kIdleSeconds = 60;  // a slot unused this long may be taken for another account

// _PG_init while shared_preload_libraries is processed: reserves the table and installs the hooks.
void install_shmem_hooks();

// False when the library was not preloaded (every run paces itself alone).
bool available();

// What one slot shows (iterable_audience.rate_controllers()).
struct SlotInfo {
	uint32_t database_oid = 0;
	int64_t account_id = 0;
	std::string endpoint;
	double documented_limit_rps = 0;  // 0: none published
	double rate = 0;              // allowed requests/s; infinity until the first 429
	double accepted_rate = 0;     // requests/s Iterable accepted over the last 2 s
	double wait_seconds = 0;      // until the next request may start
	int64_t requests = 0;         // requests started through the slot (retries are not)
	int64_t responses = 0;        // answered attempts, retries included
	int64_t rate_limited = 0;     // of them answered 429
	double idle_seconds = 0;      // since a run last used the slot
};

// The slots in use (none without preloading).
std::vector<SlotInfo> read_slots();

}  // namespace shared_pacing

}  // namespace ia
