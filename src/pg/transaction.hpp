// Short transactions in a background worker: each unit of work is its own transaction (with an SPI
// session and an active snapshot), committed before any network call.
#pragma once

#include "pg/guard.hpp"

namespace ia::pg {

void start_transaction();
void commit_transaction();
// Rolls back after an error caught by guard() (or an exception thrown by our own code).
void abort_transaction() noexcept;

template <typename F>
auto
in_transaction(F &&f) -> decltype(f())
{
	start_transaction();
	try {
		if constexpr (std::is_void_v<decltype(f())>) {
			f();
			commit_transaction();
			return;
		} else {
			auto result = f();
			commit_transaction();
			return result;
		}
	} catch (...) {
		abort_transaction();
		throw;
	}
}

}  // namespace ia::pg
