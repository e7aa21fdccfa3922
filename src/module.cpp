// Library entry: module magic and _PG_init.
#include "pg/postgres.hpp"
#include "scheduler.hpp"
#include "settings.hpp"

extern "C" {
PG_MODULE_MAGIC;

PGDLLEXPORT void _PG_init(void);

void
_PG_init(void)
{
	ia::settings::define();
	/* The scheduler exists only when preloaded; without it run_sync() still works. */
	if (process_shared_preload_libraries_in_progress && !IsBinaryUpgrade)
		ia::scheduler::register_at_preload();
}
}
