#include "pg/bulk_insert.hpp"

#include "pg/spi.hpp"

extern "C" {
#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "executor/tuptable.h"
#include "utils/memutils.h"
#include "utils/rel.h"
}

namespace ia::pg {

namespace {

constexpr int kRowsPerCall = 1000;

}  // namespace

uint64_t
insert_query_rows(unsigned int relation_oid, const std::string &query)
{
	const char *sql = query.c_str();
	// Only PostgreSQL calls in here: nothing with a destructor is alive when one of them errors.
	return guard([&]() -> uint64_t {
		Relation rel = table_open(relation_oid, RowExclusiveLock);
		if (rel->rd_rel->relhasindex || rel->rd_rel->relhastriggers || rel->rd_rel->relhasrules)
			elog(ERROR, "insert_query_rows: \"%s\" has indexes, triggers or rules", RelationGetRelationName(rel));
		SPIPlanPtr plan = SPI_prepare(sql, 0, nullptr);
		if (plan == nullptr)
			elog(ERROR, "could not plan the rows to insert: %s", SPI_result_code_string(SPI_result));
		Portal portal = SPI_cursor_open(nullptr, plan, nullptr, nullptr, false);
		TupleDesc target = RelationGetDescr(rel);
		BulkInsertState bistate = GetBulkInsertState();
		CommandId cid = GetCurrentCommandId(true);
		TupleTableSlot **slots = static_cast<TupleTableSlot **>(palloc(sizeof(TupleTableSlot *) * kRowsPerCall));
		for (int i = 0; i < kRowsPerCall; i++)
			slots[i] = table_slot_create(rel, nullptr);
		// heap_multi_insert() leaves an array of tuple pointers per call in the current context (8 bytes
		// a row: 80 MB for a 10M-row snapshot); each call gets a context that is reset after it.
		MemoryContext per_call = AllocSetContextCreate(CurrentMemoryContext, "iterable_audience bulk insert",
		                                               ALLOCSET_DEFAULT_SIZES);
		uint64_t written = 0;
		bool checked = false;
		for (;;) {
			SPI_cursor_fetch(portal, true, kRowsPerCall);
			int n = static_cast<int>(SPI_processed);
			if (n == 0)
				break;
			if (!checked) {
				TupleDesc source = SPI_tuptable->tupdesc;
				if (source->natts != target->natts)
					elog(ERROR, "insert_query_rows: the query yields %d columns, the table has %d", source->natts,
					     target->natts);
				for (int c = 0; c < target->natts; c++)
					if (TupleDescAttr(source, c)->atttypid != TupleDescAttr(target, c)->atttypid)
						elog(ERROR, "insert_query_rows: column %d of the query is of another type than the table's", c + 1);
				checked = true;
			}
			for (int i = 0; i < n; i++)
				ExecForceStoreHeapTuple(SPI_tuptable->vals[i], slots[i], false);
			MemoryContext outer = MemoryContextSwitchTo(per_call);
			table_multi_insert(rel, slots, n, cid, 0, bistate);
			MemoryContextSwitchTo(outer);
			MemoryContextReset(per_call);
			for (int i = 0; i < n; i++)
				ExecClearTuple(slots[i]);
			written += static_cast<uint64_t>(n);
			SPI_freetuptable(SPI_tuptable);
		}
		SPI_cursor_close(portal);
		SPI_freeplan(plan);
		for (int i = 0; i < kRowsPerCall; i++)
			ExecDropSingleTupleTableSlot(slots[i]);
		pfree(slots);
		MemoryContextDelete(per_call);
		FreeBulkInsertState(bistate);
		table_finish_bulk_insert(rel, 0);
		table_close(rel, NoLock);
		return written;
	});
}

}  // namespace ia::pg
