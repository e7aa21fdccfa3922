// Library entry: module magic and _PG_init.
#include "iterable/list_read_pacing.hpp"
#include "iterable/shared_pacing.hpp"  // before pg/postgres.hpp: it includes src/core headers

#include "pg/postgres.hpp"
#include "scheduler/scheduler.hpp"
#include "settings.hpp"

extern "C" {
PG_MODULE_MAGIC;

PGDLLEXPORT void _PG_init(void);

void
_PG_init(void)
{
	ia::settings::define();
	/* The scheduler and the shared pacing table exist only when preloaded; without them run_sync()
	 * still works (each run then paces its requests alone). */
	if (process_shared_preload_libraries_in_progress && !IsBinaryUpgrade) {
		ia::scheduler::register_at_preload();
		ia::shared_pacing::install_shmem_hooks();
		ia::list_read_pacing::install_shmem_hooks();  // getUsers, 5 a minute per project
	}
}
}
