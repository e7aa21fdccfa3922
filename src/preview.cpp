// SQL API: preview_sync(): the next run's plan, with no call to Iterable and no change to any state
// (the staged audience is a temporary table dropped before returning).
#include "run_preparation.hpp"
#include "sync_definition.hpp"

#include "pg/args.hpp"
#include "pg/roles.hpp"
#include "pg/spi.hpp"

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
	static int previews = 0;
	const std::string audience = "pg_temp.ia_preview_audience_" + std::to_string(++previews);
	ia::stage_audience(sync, audience);

	std::string sql = "SELECT operation, action, record_key, email, user_id, data_fields, valid, error_code, "
	                  "error_message FROM (" +
	                  ia::staged_plan_sql(sync, audience) + ") plan ORDER BY batch_class, record_key, seq";
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
		ia::pg::exec(("DROP TABLE " + audience).c_str());
	}
	spi.finish();
	return static_cast<Datum>(0);
}
