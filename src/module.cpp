// Library entry: module magic and _PG_init.
#include "pg/postgres.hpp"
#include "settings.hpp"

extern "C" {
PG_MODULE_MAGIC;

PGDLLEXPORT void _PG_init(void);

void
_PG_init(void)
{
	ia::settings::define();
}
}
