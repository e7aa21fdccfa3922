// Continuous syncs (schedule 'continuous'): no due time; each pass of the scheduler asks, in one
// query for all of them, which ones' sources may have changed since their last run read them
// (src/engine/source_changes.hpp). The run then decides exactly (an idle run when nothing did).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ia::scheduler {

struct ContinuousSync {
	int64_t sync_id;
	std::string name;
};

struct ContinuousLook {
	bool any = false;                  // some continuous sync is not paused: poll again soon
	std::vector<ContinuousSync> due;   // to start now (none of them is running)
};

// In the pass's transaction.
ContinuousLook look_at_continuous_syncs();

// How often a pass looks: half of iterable_audience.continuous_latency.
long continuous_poll_ms();

}  // namespace ia::scheduler
