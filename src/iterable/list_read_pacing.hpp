// Pacing of GET /api/lists/getUsers, which Iterable limits to 5 requests a minute per project
// (core/list_members.hpp has the rule). With the library in shared_preload_libraries, a table of
// kSlots windows in shared memory, one per (database, account), is shared by every backend, so two
// sessions checking lists of one account at once count together; without preloading (or when every
// slot belongs to another account read within the last minute), each backend keeps its own windows.
//
// Include before pg/postgres.hpp (it includes src/core headers).
#pragma once

#include <cstdint>

namespace ia::list_read_pacing {

constexpr int kSlots = 64;

// _PG_init while shared_preload_libraries is processed: reserves the table and installs the hooks.
void install_shmem_hooks();

// Takes a getUsers request for the account now: 0 when it may go (it is counted), else the seconds
// to wait before one may (nothing is counted).
double take(uint32_t database_oid, int64_t account_id);

// Iterable answered 429: no getUsers request of the account for a whole minute.
void refused(uint32_t database_oid, int64_t account_id);

}  // namespace ia::list_read_pacing
