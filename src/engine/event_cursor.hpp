// Reading an event sync's source past its cursor, exactly once (docs/event-syncs.md):
//   * the watermark W: every row with cursor <= W was handled and no other can still appear there;
//   * checkpoints: when a run starts, the largest cursor visible then and the transactions that
//     could still commit a row at or below it (xids below the snapshot's xmax, every virtual
//     transaction id in pg_locks); once all have ended, W may advance to that cursor;
//   * the sent set (event_sync_sent): rows above W already handled, so none is sent twice.
// Rows are read in cursor order, in ranges of about a chunk's size (bounded memory), as the sync's
// owner with its search_path, cursors as text in UTC and DateStyle ISO.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "definitions/event_sync_definition.hpp"

namespace ia {

// One source row past the cursor: its cursor text, its key in the sent set (cursor # md5 of the row
// # ordinal among identical rows), and the mapped fields as text (index = EventSyncDefinition::fields),
// then the data_fields columns as JSON text.
struct CursorRow {
	std::optional<std::string> cursor;
	std::string row_key;
	std::string discriminator;  // md5 # ordinal: tells rows with the same cursor apart
	std::vector<std::optional<std::string>> fields;
	std::vector<std::optional<std::string>> data_fields;
};

// The largest cursor of the source now (NULL when empty), as the caller sees it. Requires SPI.
std::optional<std::string> current_max_cursor(const SyncDefinition &sync, const EventSyncDefinition &events);

class EventCursor {
 public:
	EventCursor(const SyncDefinition &sync, const EventSyncDefinition &events, int64_t run_id);

	// preview_sync: reads in the caller's transaction and changes nothing (no checkpoint, no
	// forgetting); load() instead of begin(), and never finish().
	static EventCursor for_preview(const SyncDefinition &sync, const EventSyncDefinition &events);
	void load();

	// At the start of a run (own transaction): the watermark, the target W may reach (the largest
	// cursor of the finished checkpoints), and a new checkpoint of now.
	void begin();
	const std::optional<std::string> &watermark() const { return watermark_; }

	// Rows marked 'retry' or 'in_flight' by earlier runs (up to `limit`). Own transaction.
	std::vector<CursorRow> read_retries(int64_t limit);
	// The next range of rows past the watermark not yet handled (about `chunk` rows; empty: none
	// left). Own transaction.
	std::vector<CursorRow> read_next(int64_t chunk);
	// The run stops before the row it would read next (max_events_per_run): rows from `cursor` on
	// may be unread.
	void stopped_before(const std::string &cursor) { stopped_before_ = cursor; }

	// At the end: W advanced as far as the finished checkpoints and what was read allow, done rows
	// at or below it forgotten, checkpoints passed by it dropped. Own transaction.
	void finish();

 private:
	std::vector<CursorRow> read_rows(const std::string &where, const std::vector<std::optional<std::string>> &params);
	bool less(const std::string &a, const std::string &b);  // typed comparison of two cursor texts
	// Runs f in its own transaction (a run), or in the caller's (a preview).
	template <typename F>
	auto step(F &&f) -> decltype(f());

	bool preview_ = false;
	std::set<std::string> previewed_retries_;  // a preview shows a retried row once

	const SyncDefinition &sync_;
	const EventSyncDefinition &events_;
	int64_t run_id_;
	std::optional<std::string> watermark_;
	std::optional<std::string> target_;
	std::optional<std::string> read_to_;   // rows up to this cursor were read (ranges are inclusive)
	bool exhausted_ = false;               // the last range had no upper bound: everything was read
	bool nulls_read_ = false;              // the rows with a NULL cursor were read
	std::optional<std::string> stopped_before_;
	std::string checkpoints_;              // JSON array
};

}  // namespace ia
