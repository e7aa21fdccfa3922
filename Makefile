# PGXS build of the iterable_audience extension (C++17, libcurl).
EXTENSION  = iterable_audience
EXTVERSION = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" $(EXTENSION).control)
MODULE_big = $(EXTENSION)

SRCS = $(wildcard src/*.cpp src/*/*.cpp)
OBJS = $(SRCS:.cpp=.o)

# Install scripts: the full script of each version and the upgrade scripts between versions.
DATA = $(wildcard sql/$(EXTENSION)--*.sql)

# pg_regress runs through scripts/run-regress.sh: a temporary instance as the postgres OS user,
# with the emulator on a free port (see the installcheck target below).
NO_INSTALLCHECK = 1

PG_CONFIG ?= pg_config

WARNINGS = -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Wno-register
ifeq ($(ERROR_ON_WARNING),1)
WARNINGS += -Werror
endif
override PG_CPPFLAGS += -Isrc -DIA_VERSION=\"$(EXTVERSION)\"
override PG_CXXFLAGS += -std=c++17 -fexceptions $(WARNINGS)
SHLIB_LINK += -lcurl -lstdc++

# make SANITIZE=1: AddressSanitizer + UndefinedBehaviorSanitizer build (docs/memory-safety.md). The
# library then links libasan, which must be the first library of the process: PostgreSQL has to be
# started with LD_PRELOAD=libasan (scripts/sanitized-tests.sh does, in a private mount namespace).
ifeq ($(SANITIZE),1)
SANITIZE_FLAGS = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
override PG_CXXFLAGS += $(SANITIZE_FLAGS)
SHLIB_LINK += $(SANITIZE_FLAGS)
endif

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PostgreSQL built --with-llvm makes PGXS emit bitcode for JIT inlining with clang: C++ flags must reach it.
COMPILE.cxx.bc += -std=c++17 -Isrc -DIA_VERSION=\"$(EXTVERSION)\" -Wno-register

.PHONY: unittest installcheck
unittest:
	$(MAKE) -C test/unit
# As PGXS users expect: after make install, against the PostgreSQL that PG_CONFIG names (also when it
# is given on the command line only), REGRESS="a b" for some tests (default: test/schedule).
installcheck:
	PG_CONFIG="$(PG_CONFIG)" $(CURDIR)/scripts/run-regress.sh $(REGRESS)
