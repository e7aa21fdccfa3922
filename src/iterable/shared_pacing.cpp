// The shared pacing table (shared_pacing.hpp) and iterable_audience.rate_controllers().
//
// Locking: one spinlock guards the whole table. Every critical section is a handful of arithmetic
// operations on plain data (the rules of core/rate_controller.hpp are noexcept and allocate nothing),
// or a scan of the kSlots slots when a run attaches; no PostgreSQL call and nothing that can throw
// happens while it is held.
#include "iterable/shared_pacing.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <exception>
#include <cmath>
#include <limits>
#include <new>
#include <stdexcept>
#include <utility>

#include "iterable/learned_rate.hpp"
#include "pg/args.hpp"

extern "C" {
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
}

namespace ia {

namespace {

using shared_pacing::kEndpointChars;
using shared_pacing::kIdleSeconds;
using shared_pacing::kSlots;

const RateTuning kTuning{};

struct PacingSlot {
	bool in_use;
	Oid database_oid;
	int64 account_id;
	char endpoint[kEndpointChars];  // NUL-terminated
	uint64 generation;  // new each time the slot is taken
	double last_used;   // clock_seconds() of the last call of a run
	int64 requests;
	int64 responses;
	int64 rate_limited;
	RateState state;
};

struct PacingShared {
	slock_t mutex;
	uint64 next_generation;
	int64 fallbacks;  // attachments that found no slot (kept for a debugger)
	PacingSlot slots[kSlots];
};

static_assert(std::is_trivially_copyable_v<PacingSlot>, "shared memory holds plain data only");

PacingShared *table = nullptr;
shmem_request_hook_type prev_shmem_request_hook = nullptr;
shmem_startup_hook_type prev_shmem_startup_hook = nullptr;

// Seconds on CLOCK_MONOTONIC: the same clock in every process of the machine.
double
clock_seconds() noexcept
{
	return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void
request_shmem(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(PacingShared)));
}

void
startup_shmem(void)
{
	bool found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	void *memory = ShmemInitStruct("iterable_audience pacing", sizeof(PacingShared), &found);
	if (!found) {
		memset(memory, 0, sizeof(PacingShared));
		PacingShared *t = static_cast<PacingShared *>(memory);
		SpinLockInit(&t->mutex);
		for (PacingSlot &slot : t->slots)
			new (&slot.state) RateState();
	}
	table = static_cast<PacingShared *>(memory);
	LWLockRelease(AddinShmemInitLock);
}

// The endpoint as a slot keeps it.
struct SlotKey {
	Oid database_oid;
	int64 account_id;
	char endpoint[kEndpointChars];
};

SlotKey
key_of(uint32_t database_oid, int64_t account_id, const std::string &endpoint) noexcept
{
	SlotKey k{};
	k.database_oid = database_oid;
	k.account_id = account_id;
	size_t n = std::min(endpoint.size(), static_cast<size_t>(kEndpointChars - 1));
	memcpy(k.endpoint, endpoint.data(), n);
	k.endpoint[n] = '\0';
	return k;
}

bool
matches(const PacingSlot &s, const SlotKey &k) noexcept
{
	return s.database_oid == k.database_oid && s.account_id == k.account_id &&
	       strncmp(s.endpoint, k.endpoint, kEndpointChars) == 0;
}

// With the lock held: the slot of the key, or -1.
int
find_locked(const SlotKey &k) noexcept
{
	for (int i = 0; i < kSlots; i++)
		if (table->slots[i].in_use && matches(table->slots[i], k))
			return i;
	return -1;
}

// With the lock held: the slot of the key, else a free one, else the least recently used one idle for
// over kIdleSeconds, taken for it and started from `start`; -1 when every slot is busy with others.
int
find_or_take_locked(const SlotKey &k, const RateStart &start, double now) noexcept
{
	int free_slot = -1;
	int idle_slot = -1;
	for (int i = 0; i < kSlots; i++) {
		const PacingSlot &s = table->slots[i];
		if (!s.in_use) {
			if (free_slot < 0)
				free_slot = i;
		} else if (matches(s, k)) {
			return i;
		} else if (now - s.last_used > kIdleSeconds &&
		           (idle_slot < 0 || s.last_used < table->slots[idle_slot].last_used)) {
			idle_slot = i;
		}
	}
	int i = free_slot >= 0 ? free_slot : idle_slot;
	if (i < 0)
		return -1;
	PacingSlot &s = table->slots[i];
	s.in_use = true;
	s.database_oid = k.database_oid;
	s.account_id = k.account_id;
	memcpy(s.endpoint, k.endpoint, sizeof s.endpoint);
	s.generation = ++table->next_generation;
	s.last_used = now;
	s.requests = 0;
	s.responses = 0;
	s.rate_limited = 0;
	s.state = rate_rules::start(kTuning, start);
	return i;
}

struct DocumentedLimit {
	const char *endpoint;
	double rps;
};

// Reference §5 (Iterable's API docs): published per-project limits.
constexpr DocumentedLimit kDocumented[] = {
    {"/api/users/bulkUpdate", 5},         {"/api/events/trackBulk", 10},
    {"/api/events/track", 2000},          {"/api/users/registerDeviceToken", 500},
    {"/api/users/update", 500},           {"/api/users/forget", 3},
    {"/api/users/getFields", 3},          {"/api/users/merge", 50},
    {"/api/lists", 100},
};

}  // namespace

double
documented_limit(std::string_view endpoint)
{
	for (const DocumentedLimit &d : kDocumented)
		if (endpoint == d.endpoint)
			return d.rps;
	return 0;
}

SharedPacing::SharedPacing(uint32_t database_oid, int64_t account_id, std::string_view endpoint,
                           double documented_limit_rps)
    : database_oid_(database_oid), account_id_(account_id), endpoint_(endpoint)
{
	start_.ceiling = documented_limit_rps > 0 && std::isfinite(documented_limit_rps) ? documented_limit_rps : 0;
	const SlotKey key = key_of(database_oid_, account_id_, endpoint_);
	bool exists = false;
	if (table != nullptr) {
		SpinLockAcquire(&table->mutex);
		exists = find_locked(key) >= 0;
		SpinLockRelease(&table->mutex);
	}
	if (!exists) {
		// A new slot (or a controller of its own) starts where earlier runs left off.
		learned_rate::Remembered r = learned_rate::read(account_id_, endpoint_);
		start_.remembered = r.rate;
		start_.burst = r.burst;
	}
	local_ = rate_rules::start(kTuning, start_);
	if (table == nullptr)
		return;
	SpinLockAcquire(&table->mutex);
	int slot = find_or_take_locked(key, start_, clock_seconds());
	if (slot >= 0) {
		slot_ = slot;
		generation_ = table->slots[slot].generation;
		shared_ = true;
	} else {
		table->fallbacks++;
	}
	SpinLockRelease(&table->mutex);
}

SharedPacing::~SharedPacing()
{
	// Not while unwinding from an error: the run is failing, and its transaction state is unknown.
	if (std::uncaught_exceptions() > 0 || !(remember_rate_ > 0))
		return;
	learned_rate::write(account_id_, endpoint_, remember_rate_, remember_burst_);
}

// Runs f(state, slot or nullptr, now) on the shared state under the lock, or on the local state.
// f must not throw: it may run with the spinlock held.
template <typename F>
void
SharedPacing::apply(F &&f)
{
	static_assert(noexcept(f(std::declval<RateState &>(), static_cast<PacingSlot *>(nullptr), 0.0)),
	              "runs under a spinlock: must not throw");
	if (shared_) {
		bool done = false;
		SpinLockAcquire(&table->mutex);
		double now = clock_seconds();  // read under the lock: the runs' times reach the state in order
		int slot = slot_;
		if (!table->slots[slot].in_use || table->slots[slot].generation != generation_) {
			// Taken for another one while this run was idle: attach again.
			slot = find_or_take_locked(key_of(database_oid_, account_id_, endpoint_), start_, now);
			if (slot < 0)
				table->fallbacks++;
		}
		if (slot >= 0) {
			PacingSlot &s = table->slots[slot];
			slot_ = slot;
			generation_ = s.generation;
			s.last_used = now;
			f(s.state, &s, now);
			if (s.state.learned) {
				remember_rate_ = rate_rules::rate_to_remember(s.state);
				remember_burst_ = s.state.burst;
			}
			done = true;
		}
		SpinLockRelease(&table->mutex);
		if (done)
			return;
		shared_ = false;  // from now on alone, from a fresh state (the slot was idle for a minute)
		reserved_ = false;
		local_ = rate_rules::start(kTuning, start_);
	}
	f(local_, static_cast<PacingSlot *>(nullptr), clock_seconds());
	if (local_.learned) {
		remember_rate_ = rate_rules::rate_to_remember(local_);
		remember_burst_ = local_.burst;
	}
}

bool
SharedPacing::may_send()
{
	if (reserved_)
		return true;
	bool reserved = false;
	apply([&](RateState &state, PacingSlot *, double now) noexcept {
		reserved = rate_rules::try_send(state, kTuning, now);
	});
	reserved_ = reserved;
	return reserved;
}

double
SharedPacing::wait_seconds()
{
	if (reserved_)
		return 0.0;
	double wait = 0;
	apply([&](RateState &state, PacingSlot *, double now) noexcept { wait = rate_rules::wait_seconds(state, now); });
	return wait;
}

void
SharedPacing::on_sent()
{
	bool reserved = reserved_;
	reserved_ = false;
	apply([&](RateState &state, PacingSlot *slot, double now) noexcept {
		if (!reserved)
			rate_rules::on_sent(state, kTuning, now);
		if (slot != nullptr)
			slot->requests++;
	});
}

void
SharedPacing::on_response(bool rate_limited)
{
	apply([&](RateState &state, PacingSlot *slot, double now) noexcept {
		rate_rules::on_response(state, kTuning, now, rate_limited);
		if (slot != nullptr) {
			slot->responses++;
			if (rate_limited)
				slot->rate_limited++;
		}
	});
}

double
SharedPacing::retry_gate()
{
	double wait = 0;
	apply([&](RateState &state, PacingSlot *, double now) noexcept {
		wait = rate_rules::try_send(state, kTuning, now) ? 0.0 : std::max(rate_rules::wait_seconds(state, now), 1e-3);
	});
	return wait;
}

double
SharedPacing::rate() const
{
	if (!shared_)
		return local_.rate;
	double rate = local_.rate;  // a fresh state's, if the slot was taken
	SpinLockAcquire(&table->mutex);
	const PacingSlot &s = table->slots[slot_];
	if (s.in_use && s.generation == generation_)
		rate = s.state.rate;
	SpinLockRelease(&table->mutex);
	return rate;
}

namespace shared_pacing {

void
install_shmem_hooks()
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = request_shmem;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = startup_shmem;
}

bool
available()
{
	return table != nullptr;
}

std::vector<SlotInfo>
read_slots()
{
	if (table == nullptr)
		return {};
	std::vector<PacingSlot> copy(kSlots);  // allocated before the lock is taken
	SpinLockAcquire(&table->mutex);
	double now = clock_seconds();
	memcpy(static_cast<void *>(copy.data()), table->slots, sizeof(table->slots));
	SpinLockRelease(&table->mutex);
	std::vector<SlotInfo> out;
	for (const PacingSlot &s : copy) {
		if (!s.in_use)
			continue;
		SlotInfo info;
		info.database_oid = s.database_oid;
		info.account_id = s.account_id;
		info.endpoint.assign(s.endpoint, strnlen(s.endpoint, kEndpointChars));
		info.rate = s.state.rate;
		info.accepted_rate = rate_rules::accepted_rate(s.state, kTuning, now);
		info.wait_seconds = rate_rules::wait_seconds(s.state, now);
		info.requests = s.requests;
		info.responses = s.responses;
		info.rate_limited = s.rate_limited;
		info.idle_seconds = std::max(0.0, now - s.last_used);
		info.estimate = s.state.estimate;
		info.burst = s.state.burst;
		out.push_back(info);
	}
	return out;
}

}  // namespace shared_pacing

}  // namespace ia

namespace {

// The 0.1.0 columns, then (0.2.0) endpoint, estimate, burst: a function declared with fewer gets fewer.
constexpr int kColumns = 12;

TimestampTz
seconds_ago(TimestampTz now, double seconds)
{
	return now - static_cast<TimestampTz>(std::llround(seconds * USECS_PER_SEC));
}

}  // namespace

// iterable_audience.rate_controllers(): the shared pacing slots (none when the library is not preloaded).
IA_SQL_FUNCTION(ia_rate_controllers)
{
	std::vector<ia::shared_pacing::SlotInfo> slots = ia::shared_pacing::read_slots();
	TimestampTz now = GetCurrentTimestamp();
	ia::pg::guard([&] { InitMaterializedSRF(fcinfo, 0); });
	ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
	if (rsinfo->setDesc->natts > kColumns)
		throw std::runtime_error("iterable_audience.rate_controllers() is declared with more columns than the library knows");
	const int natts = rsinfo->setDesc->natts;
	for (const ia::shared_pacing::SlotInfo &slot : slots) {
		Datum values[kColumns];
		bool nulls[kColumns] = {};
		values[0] = ObjectIdGetDatum(slot.database_oid);
		values[1] = Int64GetDatum(slot.account_id);
		values[2] = Float8GetDatum(slot.rate);
		values[3] = Float8GetDatum(slot.accepted_rate);
		values[4] = Float8GetDatum(slot.wait_seconds);
		values[5] = Int64GetDatum(slot.requests);
		values[6] = Int64GetDatum(slot.responses);
		values[7] = Int64GetDatum(slot.rate_limited);
		values[8] = TimestampTzGetDatum(seconds_ago(now, slot.idle_seconds));
		values[10] = Float8GetDatum(slot.estimate);
		nulls[10] = !(slot.estimate > 0);
		values[11] = Float8GetDatum(slot.burst);
		ia::pg::guard([&] {
			if (natts > 9)
				values[9] = CStringGetTextDatum(slot.endpoint.c_str());
			Datum row[kColumns];
			bool row_nulls[kColumns];
			// A declaration with fewer columns (0.1.0's) gets the first ones.
			for (int i = 0; i < natts; i++) {
				row[i] = values[i];
				row_nulls[i] = nulls[i];
			}
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, row, row_nulls);
		});
	}
	return static_cast<Datum>(0);
}
