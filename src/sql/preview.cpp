// SQL API: preview_sync(): the next run's plan, with no call to Iterable and no change to any state
// (the plan is a temporary table dropped before returning).
#include "engine/event_preview.hpp"
#include "engine/run_preparation.hpp"
#include "engine/snapshot_tables.hpp"
#include "definitions/sync_definition.hpp"

#include "pg/args.hpp"
#include "pg/roles.hpp"
#include "pg/spi.hpp"

namespace {

// An event sync's next run (engine/event_preview.hpp): operation 'insert', data_fields the request.
void
preview_events(ReturnSetInfo *rsinfo, const ia::SyncDefinition &sync)
{
	ia::preview_event_sync(sync, [&](const ia::EventPreviewRow &row) {
		ia::pg::guard([&] {
			Datum values[9];
			bool nulls[9] = {false, false, false, !row.email, !row.user_id, !row.request, false, !row.error_code,
			                 !row.error_message};
			values[0] = CStringGetTextDatum("insert");
			values[1] = CStringGetTextDatum(row.action.c_str());
			values[2] = CStringGetTextDatum(row.record_key.c_str());
			values[3] = row.email ? CStringGetTextDatum(row.email->c_str()) : 0;
			values[4] = row.user_id ? CStringGetTextDatum(row.user_id->c_str()) : 0;
			values[5] = row.request ? DirectFunctionCall1(jsonb_in, CStringGetDatum(row.request->c_str())) : 0;
			values[6] = BoolGetDatum(row.valid);
			values[7] = row.error_code ? CStringGetTextDatum(row.error_code->c_str()) : 0;
			values[8] = row.error_message ? CStringGetTextDatum(row.error_message->c_str()) : 0;
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		});
	});
}

}  // namespace

IA_SQL_FUNCTION(ia_preview_sync)
{
	std::optional<std::string> name = ia::pg::arg_text(fcinfo, 0);
	if (!name || name->empty())
		throw ia::pg::UserError(ERRCODE_INVALID_PARAMETER_VALUE, "sync_name must not be empty or NULL");
	ia::pg::guard([&] { InitMaterializedSRF(fcinfo, 0); });
	ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);

	ia::pg::SpiSession spi;
	ia::SyncDefinition sync = ia::load_sync(*name);
	ia::check_sync_access(sync);
	// Before settling: each settled snapshot is granted to the owner, and a dropped owner should get
	// the error that says what to do, not a failed GRANT.
	ia::check_owner_exists(sync);
	if (sync.kind == "events") {
		preview_events(rsinfo, sync);
		spi.finish();
		return static_cast<Datum>(0);
	}
	static int previews = 0;
	const std::string suffix = std::to_string(++previews);
	std::optional<std::string> baseline;
	int64_t baseline_rows = 0;
	{
		ia::pg::AsRole as_owner(ia::pg::extension_owner());
		baseline = ia::latest_snapshot_table(sync.sync_id);
		baseline_rows = ia::latest_snapshot_rows(sync.sync_id);
		// Runs that ended before building their snapshot are settled by the next run before it plans:
		// the preview does the same into temporary tables, which the sync's owner may read.
		int n = 0;
		for (int64_t run : ia::unsettled_runs(sync.sync_id)) {
			std::string table = "pg_temp.ia_preview_settled_" + suffix + "_" + std::to_string(++n);
			ia::pg::exec(("CREATE TEMP TABLE " + table + " AS " + ia::settled_snapshot_sql(baseline, run)).c_str());
			ia::pg::exec(("GRANT SELECT ON " + table + " TO " + ia::pg::quote_identifier(ia::pg::role_name(sync.owner)))
			                 .c_str());
			baseline = table;
		}
	}
	const std::string plan = "pg_temp.ia_preview_plan_" + suffix;
	ia::build_plan(sync, plan, baseline, baseline_rows, true);  // looks for remembered failures: a preview runs once

	// data_fields is computed (|| '{}'), not read: a large value stored out of line in the plan table
	// would reach the result as a pointer into that table, which is dropped before the result is read.
	std::string sql = "SELECT operation, action, record_key, email, user_id, data_fields || '{}'::jsonb, valid, "
	                  "error_code, "
	                  "error_message FROM " + plan + " WHERE batch_class < 3 ORDER BY batch_class, record_key, seq";
	{
		ia::pg::AsRole as_owner(ia::pg::extension_owner());
		// Stream the plan into the result in chunks: memory does not grow with the audience.
		Portal cursor = ia::pg::guard([&] {
			SPIPlanPtr plan = SPI_prepare(sql.c_str(), 0, nullptr);
			if (plan == nullptr)
				elog(ERROR, "could not plan the preview: %s", SPI_result_code_string(SPI_result));
			return SPI_cursor_open(nullptr, plan, nullptr, nullptr, false);  // a fresh snapshot: sees the staged audience
		});
		for (;;) {
			uint64 fetched = ia::pg::guard([&] {
				SPI_cursor_fetch(cursor, true, 10000);
				for (uint64 i = 0; i < SPI_processed; i++)
					tuplestore_puttuple(rsinfo->setResult, SPI_tuptable->vals[i]);
				uint64 n = SPI_processed;
				SPI_freetuptable(SPI_tuptable);
				return n;
			});
			if (fetched == 0)
				break;
		}
		ia::pg::guard([&] { SPI_cursor_close(cursor); });
		ia::pg::exec(("DROP TABLE " + plan).c_str());
	}
	spi.finish();
	return static_cast<Datum>(0);
}
