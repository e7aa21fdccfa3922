#include <gtest/gtest.h>

#include <cstdlib>
#include <random>
#include <unordered_set>
#include <vector>

#include "core/repeat_filter.hpp"

namespace {

struct Arena {
	std::vector<std::vector<uint64_t>> blocks;
	static uint64_t *alloc(void *self, size_t words)
	{
		auto *arena = static_cast<Arena *>(self);
		arena->blocks.emplace_back(words, 0);
		return arena->blocks.back().data();
	}
};

uint64_t
hash_of(uint64_t key)
{
	// A well-mixed hash, as the SQL function gets from hash_bytes_extended.
	key += 0x9e3779b97f4a7c15ULL;
	key = (key ^ (key >> 30)) * 0xbf58476d1ce4e5b9ULL;
	key = (key ^ (key >> 27)) * 0x94d049bb133111ebULL;
	return key ^ (key >> 31);
}

}  // namespace

TEST(RepeatFilter, EveryRepeatIsFlaggedAndFirstSightingsRarelyAre)
{
	Arena arena;
	ia::RepeatFilter filter(&Arena::alloc, &arena, 1024);
	const uint64_t n = 300000;
	uint64_t false_positives = 0;
	for (uint64_t k = 0; k < n; k++)
		if (filter.test_and_add(hash_of(k)))
			false_positives++;
	// Nine layers here (1024 to 262144 keys), each ~0.1-0.2% false positives when full: their sum
	// stays under 2%. (The SQL function starts with one layer of its whole budget, or
	// one sized for the keys expected when they are few.)
	EXPECT_LT(false_positives, n * 2 / 100);
	for (uint64_t k = 0; k < n; k++)
		ASSERT_TRUE(filter.test_and_add(hash_of(k))) << "key " << k << " seen before but not flagged";
}

TEST(RepeatFilter, GrowsByLayersAndMemoryStaysUnderTwiceSixteenBitsPerKey)
{
	Arena arena;
	ia::RepeatFilter filter(&Arena::alloc, &arena, 1024);
	const uint64_t n = 1000000;
	for (uint64_t k = 0; k < n; k++)
		filter.test_and_add(hash_of(k));
	EXPECT_GE(arena.blocks.size(), 10u);  // 1024, 2048, ... 1048576 keys
	// Layers double: under twice 16 bits per key.
	EXPECT_LE(filter.bytes(), n * 32 / 8 + 4096);
	EXPECT_GE(filter.bytes(), n * 16 / 8);
}

TEST(RepeatFilter, RandomStreamWithDuplicatesNeverMissesOne)
{
	Arena arena;
	ia::RepeatFilter filter(&Arena::alloc, &arena);
	std::mt19937_64 rng(42);
	std::unordered_set<uint64_t> seen;
	for (int i = 0; i < 200000; i++) {
		uint64_t key = rng() % 150000;
		bool flagged = filter.test_and_add(hash_of(key));
		bool repeat = !seen.insert(key).second;
		if (repeat) {
			ASSERT_TRUE(flagged) << "repeat of key " << key << " not flagged at step " << i;
		}
	}
}

TEST(RepeatFilter, MemoryCapHoldsAndRepeatsAreStillFlagged)
{
	Arena arena;
	const size_t cap = 64 * 1024;
	ia::RepeatFilter filter(&Arena::alloc, &arena, 1024, cap);
	const uint64_t n = 100000;  // 3x what 64 KB holds at 16 bits per key
	uint64_t flagged_first = 0;
	for (uint64_t k = 0; k < n; k++)
		if (filter.test_and_add(hash_of(k)))
			flagged_first++;
	EXPECT_LE(filter.bytes(), cap);
	EXPECT_LT(flagged_first, n);  // overfull: many false positives, but not all
	for (uint64_t k = 0; k < n; k++)
		ASSERT_TRUE(filter.test_and_add(hash_of(k))) << "key " << k;
}

TEST(RepeatFilter, FirstLayerSizedForTheExpectedKeysIsAloneAndRarelyWrong)
{
	Arena arena;
	const uint64_t n = 500000;
	ia::RepeatFilter filter(&Arena::alloc, &arena, n + n / 8);
	uint64_t false_positives = 0;
	for (uint64_t k = 0; k < n; k++)
		if (filter.test_and_add(hash_of(k)))
			false_positives++;
	EXPECT_EQ(arena.blocks.size(), 1u);
	EXPECT_LT(false_positives, n / 200);  // under 0.5%
}

TEST(RepeatFilter, FirstLayerShrinksToFitTheMemoryBound)
{
	Arena arena;
	ia::RepeatFilter filter(&Arena::alloc, &arena, 100000000, 1 << 20);
	EXPECT_LE(filter.bytes(), size_t{1} << 20);
	EXPECT_FALSE(filter.test_and_add(hash_of(1)));
	EXPECT_TRUE(filter.test_and_add(hash_of(1)));
}

TEST(RepeatFilter, AllocatorFailurePropagates)
{
	struct Failing {
		static uint64_t *alloc(void *, size_t) { throw std::bad_alloc(); }
	};
	EXPECT_THROW(ia::RepeatFilter(&Failing::alloc, nullptr), std::bad_alloc);
}

// How the plan uses it: the whole budget as one layer from the start, so that memory is the same for
// any audience. Scaled down from 16 MB and 10M keys (1.19x the layer's capacity) to 1 MB.
TEST(RepeatFilter, WholeBudgetUpFrontKeepsItsMemoryAndStaysRarelyWrongPastCapacity)
{
	Arena arena;
	const size_t budget = size_t{1} << 20;  // 524288 keys at 16 bits a key
	ia::RepeatFilter filter(&Arena::alloc, &arena, uint64_t{1} << 40, budget);
	EXPECT_EQ(filter.bytes(), budget);
	const uint64_t n = 524288 + 524288 / 5;
	uint64_t false_positives = 0;
	for (uint64_t k = 0; k < n; k++)
		if (filter.test_and_add(hash_of(k)))
			false_positives++;
	EXPECT_EQ(arena.blocks.size(), 1u);
	EXPECT_EQ(filter.bytes(), budget);
	EXPECT_LT(false_positives, n / 500);  // under 0.2% (16 MB for 10M keys: 0.04%)
}
