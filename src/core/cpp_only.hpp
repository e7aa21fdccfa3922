// Included last by every header in src/core: the pure C++ parts must compile and be
// unit-tested without a PostgreSQL server, so no PostgreSQL header may leak in here.
#pragma once
#if defined(POSTGRES_H)
static_assert(false, "src/core must not include PostgreSQL headers");
#endif
