#include <algorithm>
#include <set>

#include <nlohmann/json.hpp>

#include "engine/event_cursor.hpp"
#include "engine/plan_sql.hpp"

#include "pg/guc_scope.hpp"
#include "pg/roles.hpp"
#include "pg/spi.hpp"
#include "pg/transaction.hpp"

namespace ia {

namespace {

constexpr size_t kMaxCheckpoints = 16;

// Reading as the sync's owner with its search_path; cursor texts in one canonical form.
struct OwnerReading {
	pg::AsRole as_owner;
	pg::GucScope scope;
	explicit OwnerReading(const SyncDefinition &sync) : as_owner(sync.owner)
	{
		scope.set("search_path", sync.search_path);
		scope.set("TimeZone", "UTC");
		scope.set("DateStyle", "ISO, YMD");
		scope.set("jit", "off");
	}
};

std::string
cursor_ref(const EventSyncDefinition &events)
{
	return "src." + pg::quote_identifier(events.cursor_column);
}

// The column's value as the text build_event() reads: jsonb as JSON, timestamptz in ISO.
std::string
field_sql(const std::string &column)
{
	return "(ia_rows." + pg::quote_identifier(column) + ")::text";
}

}  // namespace

std::optional<std::string>
current_max_cursor(const SyncDefinition &sync, const EventSyncDefinition &events)
{
	OwnerReading reading(sync);
	return pg::exec_scalar(("SELECT max(" + cursor_ref(events) + ")::text FROM " + source_from_item(sync.source)).c_str());
}

EventCursor::EventCursor(const SyncDefinition &sync, const EventSyncDefinition &events, int64_t run_id)
    : sync_(sync), events_(events), run_id_(run_id)
{
}

EventCursor
EventCursor::for_preview(const SyncDefinition &sync, const EventSyncDefinition &events)
{
	EventCursor cursor(sync, events, 0);
	cursor.preview_ = true;
	return cursor;
}

template <typename F>
auto
EventCursor::step(F &&f) -> decltype(f())
{
	if (preview_)
		return f();
	return pg::in_transaction(std::forward<F>(f));
}

void
EventCursor::load()
{
	pg::AsRole as_extension_owner(pg::extension_owner());
	watermark_ = pg::exec_scalar("SELECT watermark FROM iterable_audience.event_sync_state WHERE sync_id = $1::bigint",
	                             {std::to_string(sync_.sync_id)}, true);
}

bool
EventCursor::less(const std::string &a, const std::string &b)
{
	const std::string &t = events_.cursor_type;
	return pg::exec_scalar(("SELECT $1::" + t + " < $2::" + t).c_str(), {a, b}, true) == pg::SqlValue("t");
}

void
EventCursor::begin()
{
	pg::in_transaction([&] {
		const std::string id = std::to_string(sync_.sync_id);
		const std::string &t = events_.cursor_type;
		{
			pg::AsRole as_extension_owner(pg::extension_owner());
			pg::exec("INSERT INTO iterable_audience.event_sync_state (sync_id) VALUES ($1::bigint) ON CONFLICT DO NOTHING",
			         {id});
			pg::SqlResult state = pg::exec("SELECT watermark, checkpoints::text FROM iterable_audience.event_sync_state "
			                               "WHERE sync_id = $1::bigint",
			                               {id});
			watermark_ = state.at(0, 0);
			checkpoints_ = *state.at(0, 1);
			// A checkpoint is finished when every xid below its xmax has ended (prepared transactions
			// included) and none of its virtual transactions (those with no xid yet) is still open.
			pg::GucScope scope;
			scope.set("TimeZone", "UTC");
			scope.set("DateStyle", "ISO, YMD");
			target_ = pg::exec_scalar(
			    ("SELECT max((c->>'max')::" + t + ")::text FROM jsonb_array_elements($1::jsonb) c "
			     "WHERE pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot()) >= (c->>'xmax')::xid8 "
			     "AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_locks l WHERE l.locktype = 'virtualxid' "
			     "AND l.virtualxid = ANY (ARRAY(SELECT jsonb_array_elements_text(c->'vxids'))))")
			        .c_str(),
			    {checkpoints_});
		}
		// A checkpoint of now, in this order: the largest cursor visible (statement A); the open
		// transactions (B); the xid horizon after B (C). A transaction that can still commit a row at
		// or below that cursor was running before A: it is open at B (a vxid), or it committed
		// between A and B, with an xid assigned before C's xmax.
		std::optional<std::string> max = current_max_cursor(sync_, events_);
		if (!max)
			return;
		pg::AsRole as_extension_owner(pg::extension_owner());
		std::string vxids = *pg::exec_scalar(
		    "SELECT coalesce(jsonb_agg(l.virtualxid), '[]')::text FROM pg_catalog.pg_locks l "
		    "WHERE l.locktype = 'virtualxid' AND l.pid IS DISTINCT FROM pg_catalog.pg_backend_pid()");
		std::string xmax = *pg::exec_scalar("SELECT pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot())::text");
		nlohmann::json list = nlohmann::json::parse(checkpoints_);
		list.push_back({{"xmax", xmax}, {"vxids", nlohmann::json::parse(vxids)}, {"max", *max}});
		// Bounded: the two oldest merge (all their transactions, the larger horizon and cursor),
		// which only delays their promotion.
		while (list.size() > kMaxCheckpoints) {
			nlohmann::json &a = list[0], &b = list[1];
			nlohmann::json merged;
			merged["xmax"] = std::stoull(a["xmax"].get<std::string>()) > std::stoull(b["xmax"].get<std::string>())
			                     ? a["xmax"] : b["xmax"];
			std::set<std::string> all;
			for (const auto &v : a["vxids"])
				all.insert(v.get<std::string>());
			for (const auto &v : b["vxids"])
				all.insert(v.get<std::string>());
			merged["vxids"] = all;
			merged["max"] = less(a["max"].get<std::string>(), b["max"].get<std::string>()) ? b["max"] : a["max"];
			list.erase(list.begin());
			list[0] = merged;
		}
		checkpoints_ = list.dump();
		pg::exec("UPDATE iterable_audience.event_sync_state SET checkpoints = $2::jsonb WHERE sync_id = $1::bigint",
		         {id, checkpoints_});
	});
}

std::vector<CursorRow>
EventCursor::read_rows(const std::string &where, const std::vector<std::optional<std::string>> &params)
{
	std::string columns;
	for (const auto &[field, column] : events_.fields)
		columns += ", " + field_sql(column);
	for (const auto &[field, column] : sync_.data_fields)
		columns += ", to_jsonb(ia_rows." + pg::quote_identifier(column) + ")::text";
	std::string sql = "WITH ia_rows AS (SELECT src.*, (" + cursor_ref(events_) + ")::text AS ia_cur, "
	                  "md5(row_to_json(src)::text) AS ia_md5, " + cursor_ref(events_) + " AS ia_order FROM " +
	                  source_from_item(sync_.source) + " WHERE " + where +
	                  ") SELECT ia_cur, ia_md5 || '-' || row_number() OVER (PARTITION BY ia_cur, ia_md5) AS ia_disc" +
	                  columns + " FROM ia_rows ORDER BY ia_order, ia_md5, 2";
	pg::SqlResult r;
	{
		OwnerReading reading(sync_);
		r = pg::exec(sql.c_str(), params);
	}
	std::vector<CursorRow> rows;
	rows.reserve(r.rows.size());
	const size_t nf = events_.fields.size();
	for (pg::SqlRow &raw : r.rows) {
		CursorRow row;
		row.cursor = raw[0];
		row.discriminator = *raw[1];
		row.row_key = raw[0].value_or("") + "#" + row.discriminator;
		row.fields.assign(raw.begin() + 2, raw.begin() + 2 + static_cast<long>(nf));
		row.data_fields.assign(raw.begin() + 2 + static_cast<long>(nf), raw.end());
		rows.push_back(std::move(row));
	}
	return rows;
}

std::vector<CursorRow>
EventCursor::read_retries(int64_t limit)
{
	return step([&] {
		const std::string id = std::to_string(sync_.sync_id), run = std::to_string(run_id_);
		pg::SqlResult keys;
		{
			pg::AsRole as_extension_owner(pg::extension_owner());
			keys = pg::exec("SELECT row_key, cursor_value FROM iterable_audience.event_sync_sent WHERE sync_id = $1::bigint "
			                "AND state IN ('retry', 'in_flight') AND run_id <> $2::bigint AND cursor_value <> '' "
			                "ORDER BY cursor_value LIMIT $3::bigint",
			                {id, run, std::to_string(limit)});
		}
		if (keys.empty())
			return std::vector<CursorRow>{};
		std::set<std::string> wanted;
		std::vector<pg::SqlValue> cursors;
		for (const pg::SqlRow &k : keys.rows) {
			wanted.insert(*k[0]);
			cursors.push_back(k[1]);
		}
		std::vector<CursorRow> rows =
		    read_rows(cursor_ref(events_) + " = ANY " + pg::array_param(1, events_.cursor_type), {pg::array_literal(cursors)});
		std::vector<CursorRow> found;
		for (CursorRow &row : rows)
			if (wanted.erase(row.row_key)) {
				if (preview_)
					previewed_retries_.insert(row.row_key);
				found.push_back(std::move(row));
			}
		// Rows gone from the source since they failed: nothing left to send.
		if (!wanted.empty() && !preview_) {
			std::vector<pg::SqlValue> gone(wanted.begin(), wanted.end());
			pg::AsRole as_extension_owner(pg::extension_owner());
			pg::exec("DELETE FROM iterable_audience.event_sync_sent WHERE sync_id = $1::bigint AND row_key = ANY " + pg::array_param(2, "text"),
			         {id, pg::array_literal(gone)});
		}
		return found;
	});
}

std::vector<CursorRow>
EventCursor::read_next(int64_t chunk)
{
	return step([&] {
		const std::string &t = events_.cursor_type;
		for (;;) {
			std::vector<CursorRow> rows;
			if (exhausted_) {
				// Last, the rows whose cursor is NULL: never in the stream, each fails once (build_event
				// refuses them) and stays in the sent set as done (their key has no cursor part).
				if (nulls_read_)
					return std::vector<CursorRow>{};
				nulls_read_ = true;
				rows = read_rows(cursor_ref(events_) + " IS NULL", {});
			} else {
				std::optional<std::string> lower = read_to_ ? read_to_ : watermark_;
				std::string after = lower ? cursor_ref(events_) + " > $1::" + t : "$1::text IS NULL";
				// The range ends at the cursor of about the chunk-th row (all rows with that cursor in it).
				std::optional<std::string> hi;
				{
					OwnerReading reading(sync_);
					hi = pg::exec_scalar(("SELECT (" + cursor_ref(events_) + ")::text FROM " +
					                      source_from_item(sync_.source) + " WHERE " + after + " AND " +
					                      cursor_ref(events_) + " IS NOT NULL ORDER BY " + cursor_ref(events_) +
					                      " OFFSET $2::bigint LIMIT 1")
					                         .c_str(),
					                     {lower, std::to_string(std::max<int64_t>(chunk - 1, 0))});
				}
				rows = hi ? read_rows(after + " AND " + cursor_ref(events_) + " <= $2::" + t, {lower, hi})
				          : read_rows(after + " AND " + cursor_ref(events_) + " IS NOT NULL", {lower});
				if (hi)
					read_to_ = hi;
				else
					exhausted_ = true;
			}
			if (rows.empty())
				continue;
			std::vector<pg::SqlValue> keys;
			for (const CursorRow &row : rows)
				keys.emplace_back(row.row_key);
			pg::SqlResult sent;
			{
				pg::AsRole as_extension_owner(pg::extension_owner());
				sent = pg::exec("SELECT row_key FROM iterable_audience.event_sync_sent WHERE sync_id = $1::bigint "
				                "AND (state = 'done' OR run_id = $2::bigint) AND row_key = ANY " + pg::array_param(3, "text"),
				                {std::to_string(sync_.sync_id), std::to_string(run_id_), pg::array_literal(keys)});
			}
			std::set<std::string> handled;
			for (const pg::SqlRow &s : sent.rows)
				handled.insert(*s[0]);
			std::vector<CursorRow> fresh;
			for (CursorRow &row : rows)
				if (!handled.count(row.row_key) && !previewed_retries_.count(row.row_key))
					fresh.push_back(std::move(row));
			if (!fresh.empty())
				return fresh;
		}
	});
}

void
EventCursor::finish()
{
	pg::in_transaction([&] {
		if (!target_)
			return;
		const std::string &t = events_.cursor_type;
		std::optional<std::string> next;
		if (!stopped_before_) {
			if (exhausted_)
				next = target_;
		} else if (less(*target_, *stopped_before_)) {
			next = target_;
		} else {
			// Every row below the one not read was read: W may reach the largest cursor below it.
			OwnerReading reading(sync_);
			next = pg::exec_scalar(("SELECT max(" + cursor_ref(events_) + ")::text FROM " + source_from_item(sync_.source) +
			                        " WHERE " + cursor_ref(events_) + " < $1::" + t)
			                           .c_str(),
			                       {*stopped_before_});
		}
		if (!next || (watermark_ && !less(*watermark_, *next)))
			return;
		pg::AsRole as_extension_owner(pg::extension_owner());
		const std::string id = std::to_string(sync_.sync_id);
		pg::exec(("UPDATE iterable_audience.event_sync_state SET watermark = $2, checkpoints = "
		          "(SELECT coalesce(jsonb_agg(c), '[]') FROM jsonb_array_elements(checkpoints) c "
		          "WHERE (c->>'max')::" + t + " > $2::" + t + ") WHERE sync_id = $1::bigint")
		             .c_str(),
		         {id, next});
		pg::exec(("DELETE FROM iterable_audience.event_sync_sent WHERE sync_id = $1::bigint AND state = 'done' "
		          "AND CASE WHEN cursor_value = '' THEN false ELSE cursor_value::" + t + " <= $2::" + t + " END")
		             .c_str(),
		         {id, next});
		watermark_ = next;
	});
}

}  // namespace ia
