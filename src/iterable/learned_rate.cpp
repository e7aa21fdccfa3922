#include "iterable/learned_rate.hpp"

#include <cmath>

#include "pg/spi.hpp"
#include "pg/transaction.hpp"

extern "C" {
#include "access/xact.h"
}

namespace ia::learned_rate {

namespace {

bool
table_exists()
{
	return pg::exec_scalar("SELECT to_regclass('iterable_audience.learned_rate') IS NOT NULL").value_or("f") == "t";
}

}  // namespace

Remembered
read(int64_t account_id, const std::string &endpoint) noexcept
{
	Remembered out;
	if (IsTransactionState())
		return out;
	try {
		pg::in_transaction([&] {
			if (!table_exists())
				return;
			pg::SqlResult r = pg::exec("SELECT rate, coalesce(burst, 0) FROM iterable_audience.learned_rate "
			                           "WHERE account_id = $1::bigint AND endpoint = $2",
			                           {std::to_string(account_id), endpoint}, true);
			if (r.empty() || !r.at(0, 0) || !r.at(0, 1))
				return;
			out.rate = std::stod(*r.at(0, 0));
			out.burst = std::stod(*r.at(0, 1));
		});
	} catch (...) {
		return Remembered{};
	}
	if (!(out.rate > 0) || !std::isfinite(out.rate))
		return Remembered{};
	return out;
}

void
write(int64_t account_id, const std::string &endpoint, double rate, double burst) noexcept
{
	if (IsTransactionState() || !(rate > 0) || !std::isfinite(rate))
		return;
	try {
		pg::in_transaction([&] {
			if (!table_exists())
				return;
			// The account may have been dropped meanwhile: then there is nothing to remember it for.
			pg::exec("INSERT INTO iterable_audience.learned_rate (account_id, endpoint, rate, burst, updated_at) "
			         "SELECT account_id, $2, $3::double precision, $4::double precision, now() "
			         "FROM iterable_audience.account WHERE account_id = $1::bigint "
			         "ON CONFLICT (account_id, endpoint) DO UPDATE SET rate = EXCLUDED.rate, burst = EXCLUDED.burst, "
			         "updated_at = EXCLUDED.updated_at",
			         {std::to_string(account_id), endpoint, std::to_string(rate),
			          std::to_string(burst >= 1 && std::isfinite(burst) ? burst : 1.0)});
		});
	} catch (const std::exception &e) {
		try {
			std::string message = std::string("iterable_audience: could not remember the learned rate: ") + e.what();
			pg::guard([&] { ereport(WARNING, (errmsg_internal("%s", message.c_str()))); });
		} catch (...) {
		}
	} catch (...) {
	}
}

}  // namespace ia::learned_rate
