#include "pg/guard.hpp"

#include <new>

namespace ia::pg {

void
throw_caught_pg_error(MemoryContext ctx)
{
	MemoryContextSwitchTo(ctx);
	ErrorData *edata = CopyErrorData();
	FlushErrorState();
	PgError error(edata->sqlerrcode, edata->message ? edata->message : "unknown error",
	              edata->detail ? edata->detail : "", edata->hint ? edata->hint : "");
	FreeErrorData(edata);
	throw error;
}

bool
interrupt_pending() noexcept
{
	return QueryCancelPending || ProcDiePending;
}

void
throw_if_interrupted()
{
	if (interrupt_pending())
		throw Interrupted();
}

namespace {

// Error text copied out of a C++ exception; fixed buffers so that nothing in the catch blocks can
// fail or longjmp.
struct CaughtError {
	int sqlerrcode = ERRCODE_INTERNAL_ERROR;
	bool interrupted = false;
	char message[4096] = {0};
	char detail[2048] = {0};
	char hint[1024] = {0};

	void set(int code, const char *msg, const char *det = "", const char *hnt = "") noexcept
	{
		sqlerrcode = code;
		strlcpy(message, msg, sizeof(message));
		strlcpy(detail, det, sizeof(detail));
		strlcpy(hint, hnt, sizeof(hint));
	}
};

}  // namespace

Datum
invoke_sql_function(const char * /*name*/, SqlFunctionBody body, FunctionCallInfo fcinfo)
{
	static CaughtError caught;  // static: kept out of the frame that ereport() leaves by longjmp
	sigjmp_buf *saved_stack = PG_exception_stack;
	ErrorContextCallback *saved_context = error_context_stack;
	try {
		return body(fcinfo);
	} catch (const PgError &e) {
		caught.set(e.sqlerrcode, e.message.c_str(), e.detail.c_str(), e.hint.c_str());
	} catch (const UserError &e) {
		caught.set(e.sqlerrcode, e.what(), e.detail.c_str(), e.hint.c_str());
	} catch (const Interrupted &) {
		caught.set(ERRCODE_QUERY_CANCELED, "canceling statement due to user request");
		caught.interrupted = true;
	} catch (const std::bad_alloc &) {
		caught.set(ERRCODE_OUT_OF_MEMORY, "out of memory");
	} catch (const std::exception &e) {
		caught.set(ERRCODE_INTERNAL_ERROR, e.what());
	} catch (...) {
		caught.set(ERRCODE_INTERNAL_ERROR, "unknown C++ exception");
	}
	// Every C++ object of the body is destroyed by now: raising is safe.
	PG_exception_stack = saved_stack;
	error_context_stack = saved_context;
	if (caught.interrupted) {
		caught.interrupted = false;
		CHECK_FOR_INTERRUPTS();  // raises PostgreSQL's own cancel or terminate error
	}
	ereport(ERROR, (errcode(caught.sqlerrcode), errmsg_internal("%s", caught.message),
	                caught.detail[0] ? errdetail_internal("%s", caught.detail) : 0,
	                caught.hint[0] ? errhint("%s", caught.hint) : 0));
	pg_unreachable();
}

}  // namespace ia::pg
