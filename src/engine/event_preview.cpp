// preview_sync() of an event sync: the rows the next run would send (those failed earlier that it
// sends again, then the rows past the cursor, up to max_events_per_run), each with its request or
// the reason it would be refused; nothing is sent and no state changes. data_fields holds the
// request element Iterable would receive (a trackBulk event, or the single request's body).
#include "engine/event_preview.hpp"
#include "engine/event_cursor.hpp"
#include "engine/event_rows.hpp"

#include "pg/spi.hpp"

namespace ia {

void
preview_event_sync(const SyncDefinition &sync, const std::function<void(const EventPreviewRow &)> &emit)
{
	EventSyncDefinition events = load_event_definition(sync.sync_id);
	EventCursor cursor = EventCursor::for_preview(sync, events);
	cursor.load();
	EventBuildOptions options = event_build_options(sync, events);
	const std::string action(event_kind_action(events.kind));
	int64_t left = events.max_events_per_run.value_or(INT64_MAX);
	auto show = [&](const std::vector<CursorRow> &rows) {
		for (const CursorRow &row : rows) {
			if (left <= 0)
				return;
			left--;
			BuiltEvent built = build_row(options, sync, events, row);
			EventPreviewRow out;
			out.action = action;
			out.record_key = built.record_key.empty() ? row.cursor.value_or("") : built.record_key;
			if (!built.email.empty())
				out.email = built.email;
			if (!built.user_id.empty())
				out.user_id = built.user_id;
			out.valid = built.ok();
			if (built.ok())
				out.request = built.json;
			else {
				out.error_code = built.error_code;
				out.error_message = built.error_message;
			}
			emit(out);
		}
	};
	// The retried rows once (a run marks them as it goes; a preview shows the first thousand).
	show(cursor.read_retries(1000));
	while (left > 0) {
		std::vector<CursorRow> rows = cursor.read_next(1000);
		if (rows.empty())
			break;
		show(rows);
	}
}

}  // namespace ia
