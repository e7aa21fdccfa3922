#include "pg/transaction.hpp"

extern "C" {
#include "pgstat.h"
}

namespace ia::pg {

void
start_transaction()
{
	guard([] {
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		PushActiveSnapshot(GetTransactionSnapshot());
	});
}

void
commit_transaction()
{
	guard([] {
		PopActiveSnapshot();
		SPI_finish();
		CommitTransactionCommand();
		pgstat_report_stat(false);
	});
}

void
abort_transaction() noexcept
{
	// What PostgreSQL's own error recovery does; the error itself was already copied and flushed.
	HOLD_INTERRUPTS();
	AbortCurrentTransaction();
	MemoryContextSwitchTo(TopMemoryContext);
	RESUME_INTERRUPTS();
}

}  // namespace ia::pg
