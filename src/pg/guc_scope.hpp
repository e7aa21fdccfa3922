// Setting GUCs for a stretch of code and restoring them, the way a function's SET clause does
// (NewGUCNestLevel / AtEOXact_GUC), so the caller's session is left as it was.
#pragma once

#include "pg/guard.hpp"

namespace ia::pg {

class GucScope {
 public:
	GucScope();
	~GucScope();
	void set(const char *name, const std::string &value);
	GucScope(const GucScope &) = delete;
	GucScope &operator=(const GucScope &) = delete;

 private:
	int nest_level_;
};

}  // namespace ia::pg
