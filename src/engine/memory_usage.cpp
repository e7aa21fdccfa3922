#include "engine/memory_usage.hpp"

#include <cstdio>
#include <cstring>

namespace ia {

namespace {
long peak_kb = 0;
}

void
sample_private_memory()
{
	FILE *status = fopen("/proc/self/status", "r");
	if (status == nullptr)
		return;
	char line[256];
	while (fgets(line, sizeof(line), status) != nullptr) {
		long kb;
		if (strncmp(line, "RssAnon:", 8) == 0 && sscanf(line + 8, "%ld", &kb) == 1) {
			if (kb > peak_kb)
				peak_kb = kb;
			break;
		}
	}
	fclose(status);
}

long
peak_private_memory_kb()
{
	return peak_kb;
}

}  // namespace ia
