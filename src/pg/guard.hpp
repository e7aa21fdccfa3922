// The C++/PostgreSQL seam, used by every SQL-callable function and every PostgreSQL call made while
// C++ objects are alive.
//
//  * PostgreSQL -> C++: guard(f) runs f under its own sigsetjmp; a PostgreSQL ERROR raised inside f
//    is copied and rethrown as ia::pg::PgError, so C++ destructors above the guard still run.
//    Keep objects with destructors out of f itself: the longjmp skips f's own frame.
//  * C++ -> PostgreSQL: IA_SQL_FUNCTION wraps a function body in try/catch; the message of whatever
//    was thrown is copied into a fixed buffer and raised with ereport only after the C++ scope has
//    unwound.
#pragma once

#include "pg/postgres.hpp"

namespace ia::pg {

// A PostgreSQL error caught by guard(), carried as a C++ exception.
class PgError : public std::exception {
 public:
	PgError(int sqlerrcode, std::string message, std::string detail, std::string hint)
	    : sqlerrcode(sqlerrcode), message(std::move(message)), detail(std::move(detail)), hint(std::move(hint)) {}
	const char *what() const noexcept override { return message.c_str(); }

	int sqlerrcode;
	std::string message;
	std::string detail;
	std::string hint;
};

// An error of ours meant for the user: a SQLSTATE, a message, and what to do about it.
class UserError : public std::runtime_error {
 public:
	UserError(int sqlerrcode, const std::string &message, std::string hint = {}, std::string detail = {})
	    : std::runtime_error(message), sqlerrcode(sqlerrcode), hint(std::move(hint)), detail(std::move(detail)) {}

	int sqlerrcode;
	std::string hint;
	std::string detail;
};

// Thrown when a cancel or terminate request is pending; the entry point unwinds, then lets
// CHECK_FOR_INTERRUPTS raise PostgreSQL's own error for it.
class Interrupted : public std::exception {
 public:
	const char *what() const noexcept override { return "interrupted"; }
};

[[noreturn]] void throw_caught_pg_error(MemoryContext ctx);

template <typename F>
auto
guard(F &&f) -> decltype(f())
{
	MemoryContext ctx = CurrentMemoryContext;
	sigjmp_buf *volatile saved_stack = PG_exception_stack;
	ErrorContextCallback *volatile saved_context = error_context_stack;
	sigjmp_buf local;
	if (sigsetjmp(local, 0) == 0) {
		PG_exception_stack = &local;
		if constexpr (std::is_void_v<decltype(f())>) {
			f();
			PG_exception_stack = saved_stack;
			error_context_stack = saved_context;
			return;
		} else {
			decltype(f()) result = f();
			PG_exception_stack = saved_stack;
			error_context_stack = saved_context;
			return result;
		}
	}
	PG_exception_stack = saved_stack;
	error_context_stack = saved_context;
	throw_caught_pg_error(ctx);
}

// True when a cancel (pg_cancel_backend, statement_timeout) or terminate (SIGTERM) is pending.
// Reads plain flags: safe to call from anywhere, including src/core callbacks' callers.
bool interrupt_pending() noexcept;

// Throws Interrupted when interrupt_pending().
void throw_if_interrupted();

using SqlFunctionBody = Datum (*)(FunctionCallInfo);
Datum invoke_sql_function(const char *name, SqlFunctionBody body, FunctionCallInfo fcinfo);

}  // namespace ia::pg

// Declares a guarded SQL-callable function:  IA_SQL_FUNCTION(ia_lists) { ...C++ body... }
#define IA_SQL_FUNCTION(name)                                                         \
	static Datum name##_body(FunctionCallInfo fcinfo);                              \
	extern "C" {                                                                    \
	PG_FUNCTION_INFO_V1(name);                                                      \
	Datum name(PG_FUNCTION_ARGS) { return ia::pg::invoke_sql_function(#name, name##_body, fcinfo); } \
	}                                                                               \
	static Datum name##_body(FunctionCallInfo fcinfo)
