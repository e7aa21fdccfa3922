// Keeping snapshot tables tied to the extension across pg_dump/pg_restore (snapshot_tables.hpp,
// tie_snapshot_table): a trigger on iterable_audience.snapshot, and a function for the upgrade script.
#include "engine/snapshot_tables.hpp"

#include "pg/spi.hpp"

extern "C" {
#include "commands/trigger.h"
#include "executor/spi.h"
}

// AFTER INSERT trigger on iterable_audience.snapshot. A restore creates the snapshot tables (pre-data)
// before it loads the rows of iterable_audience.snapshot (data), so the table a row names exists when
// the row arrives; pg_dump does not carry the tie itself. For a row the extension inserts, the table
// is tied already and this does nothing.
IA_SQL_FUNCTION(ia_snapshot_registered)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		throw ia::pg::UserError(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED, "_snapshot_registered() is a trigger function");
	TriggerData *trigger = reinterpret_cast<TriggerData *>(fcinfo->context);
	if (!TRIGGER_FIRED_BY_INSERT(trigger->tg_event) || !TRIGGER_FIRED_FOR_ROW(trigger->tg_event))
		throw ia::pg::UserError(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
		                        "_snapshot_registered() must be an AFTER INSERT ... FOR EACH ROW trigger");
	char *value = ia::pg::guard([&] {
		TupleDesc desc = trigger->tg_relation->rd_att;
		int column = SPI_fnumber(desc, "table_name");
		return column > 0 ? SPI_getvalue(trigger->tg_trigtuple, desc, column) : nullptr;
	});
	if (value == nullptr)
		throw ia::pg::UserError(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED, "iterable_audience.snapshot has no table_name");
	std::string table_name = value;
	ia::pg::SpiSession spi;
	ia::tie_snapshot_table(table_name);
	spi.finish();
	return PointerGetDatum(nullptr);
}

// _tie_snapshot_tables(): ties every registered snapshot table not tied yet; how many it tied.
IA_SQL_FUNCTION(ia_tie_snapshot_tables)
{
	ia::pg::SpiSession spi;
	int tied = ia::tie_registered_snapshot_tables(std::nullopt);
	spi.finish();
	PG_RETURN_INT32(tied);
}
