// One source row of an event sync -> its request (core/event_bodies.hpp), or its refusal before
// sending: shared by the run (run_events.cpp) and preview_sync, so a preview is what a run sends.
#pragma once

#include "core/event_bodies.hpp"
#include "definitions/event_sync_definition.hpp"
#include "engine/event_cursor.hpp"

namespace ia {

EventBuildOptions event_build_options(const SyncDefinition &sync, const EventSyncDefinition &events);

// The row's request; a refused row has error_code set ('too_large' too: a request over the body cap).
BuiltEvent build_row(const EventBuildOptions &options, const SyncDefinition &sync, const EventSyncDefinition &events,
                     const CursorRow &row);

}  // namespace ia
