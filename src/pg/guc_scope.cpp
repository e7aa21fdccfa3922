#include "pg/guc_scope.hpp"

namespace ia::pg {

GucScope::GucScope()
{
	nest_level_ = NewGUCNestLevel();
}

GucScope::~GucScope()
{
	// AtEOXact_GUC only pops GUC state; on the error path transaction abort does it instead.
	if (std::uncaught_exceptions() == 0)
		AtEOXact_GUC(true, nest_level_);
}

void
GucScope::set(const char *name, const std::string &value)
{
	const char *text = value.c_str();
	guard([&] {
		(void) set_config_option(name, text, PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	});
}

}  // namespace ia::pg
