// Ends a run early with a status and the reason: a whole-run failure ('failed'), or the removal
// guard ('blocked'). Thrown by the phases (and kinds' preflights), caught by perform_run.
#pragma once

#include <string>

namespace ia {

struct RunEnded {
	std::string status;
	std::string error;
};

}  // namespace ia
