// The getUsers pacing table (list_read_pacing.hpp). One spinlock guards it; each critical section is a
// scan of kSlots slots and a few comparisons on plain data (ListReadWindow's methods are noexcept and
// allocate nothing): no PostgreSQL call and nothing that can throw happens while it is held.
#include "iterable/list_read_pacing.hpp"

#include <chrono>
#include <cstring>
#include <map>
#include <utility>

#include "core/list_members.hpp"
#include "pg/postgres.hpp"

extern "C" {
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
}

namespace ia::list_read_pacing {

namespace {

struct Slot {
	bool in_use;
	Oid database_oid;
	int64 account_id;
	double last_used;  // clock_seconds() of the last take() or refused()
	ListReadWindow window;
};

struct Table {
	slock_t mutex;
	Slot slots[kSlots];
};

static_assert(std::is_trivially_copyable_v<Slot>, "shared memory holds plain data only");

Table *table = nullptr;
shmem_request_hook_type prev_shmem_request_hook = nullptr;
shmem_startup_hook_type prev_shmem_startup_hook = nullptr;

// This backend's own windows: without preloading, or when the table is full.
std::map<std::pair<Oid, int64>, ListReadWindow> local_windows;

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
	RequestAddinShmemSpace(MAXALIGN(sizeof(Table)));
}

void
startup_shmem(void)
{
	bool found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	void *memory = ShmemInitStruct("iterable_audience getUsers pacing", sizeof(Table), &found);
	if (!found) {
		memset(memory, 0, sizeof(Table));
		SpinLockInit(&static_cast<Table *>(memory)->mutex);
	}
	table = static_cast<Table *>(memory);
	LWLockRelease(AddinShmemInitLock);
}

// With the lock held: the account's slot, else a free one, else one whose window is over (idle for a
// whole window and not refused), taken for it; nullptr when every slot is busy.
Slot *
find_or_take_locked(Oid database_oid, int64 account_id, double now) noexcept
{
	Slot *free_slot = nullptr;
	for (Slot &s : table->slots) {
		if (s.in_use && s.database_oid == database_oid && s.account_id == account_id)
			return &s;
		bool over = !s.in_use ||
		            (now - s.last_used > kListReadWindowSeconds && now >= s.window.refused_until);
		if (over && free_slot == nullptr)
			free_slot = &s;
	}
	if (free_slot != nullptr) {
		free_slot->in_use = true;
		free_slot->database_oid = database_oid;
		free_slot->account_id = account_id;
		free_slot->window.clear();
	}
	return free_slot;
}

ListReadWindow &
local_window(Oid database_oid, int64 account_id)
{
	auto [it, added] = local_windows.try_emplace({database_oid, account_id});
	if (added)
		it->second.clear();
	return it->second;
}

// Applies f to the account's window: the shared one when there is one, else this backend's.
template <typename F>
auto
with_window(Oid database_oid, int64 account_id, F &&f)
{
	double now = clock_seconds();
	if (table != nullptr) {
		SpinLockAcquire(&table->mutex);
		Slot *slot = find_or_take_locked(database_oid, account_id, now);
		if (slot != nullptr) {
			slot->last_used = now;
			auto result = f(slot->window, now);
			SpinLockRelease(&table->mutex);
			return result;
		}
		SpinLockRelease(&table->mutex);
	}
	return f(local_window(database_oid, account_id), now);
}

}  // namespace

void
install_shmem_hooks()
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = request_shmem;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = startup_shmem;
}

double
take(uint32_t database_oid, int64_t account_id)
{
	return with_window(database_oid, account_id, [](ListReadWindow &w, double now) { return w.try_take(now); });
}

void
refused(uint32_t database_oid, int64_t account_id)
{
	with_window(database_oid, account_id, [](ListReadWindow &w, double now) {
		w.refused(now);
		return 0;
	});
}

}  // namespace ia::list_read_pacing
