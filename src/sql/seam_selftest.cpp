// _seam_selftest(mode): raises errors across the C++/PostgreSQL boundary on purpose, so regress
// tests can prove that errors reach the client cleanly, C++ destructors run, and the session stays
// usable. Superuser only.
#include "pg/args.hpp"
#include "pg/spi.hpp"

namespace {

int destructors_run = 0;

// Counts its destruction: proves the stack was unwound rather than longjmp'd over.
struct Witness {
	std::string payload = std::string(64, 'x');  // owns heap memory, like real C++ state
	~Witness() { destructors_run++; }
};

}  // namespace

IA_SQL_FUNCTION(ia_seam_selftest)
{
	std::string mode = ia::pg::arg_text(fcinfo, 0).value_or("");
	if (mode == "destructors_run")
		PG_RETURN_DATUM(ia::pg::text_datum(std::to_string(destructors_run)));
	Witness witness;
	if (mode == "cpp_exception")
		throw std::runtime_error("selftest: a C++ exception crossed into PostgreSQL as an ERROR");
	if (mode == "user_error")
		throw ia::pg::UserError(ERRCODE_INVALID_PARAMETER_VALUE, "selftest: a user error", "selftest hint");
	if (mode == "pg_error") {
		// int4in raises invalid_text_representation through ereport/longjmp, under live C++ objects.
		ia::pg::guard([] { return DirectFunctionCall1(int4in, CStringGetDatum("not a number")); });
	}
	if (mode == "spi_error") {
		ia::pg::SpiSession spi;
		ia::pg::exec("SELECT 1 / 0");
		spi.finish();
	}
	if (mode == "bad_alloc")
		throw std::bad_alloc();
	if (mode == "ok")
		PG_RETURN_DATUM(ia::pg::text_datum("ok"));
	throw ia::pg::UserError(ERRCODE_INVALID_PARAMETER_VALUE, "unknown selftest mode \"" + mode + "\"");
}
