#include "core/repeat_filter.hpp"

#include <stdexcept>

namespace ia {

namespace {

// splitmix64's finalizer: derives the second probe hash from the first.
uint64_t
mix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

}  // namespace

RepeatFilter::RepeatFilter(Allocator alloc, void *context, uint64_t first_capacity)
    : alloc_(alloc), context_(context)
{
	add_layer(first_capacity < 1024 ? 1024 : first_capacity);
}

void
RepeatFilter::add_layer(uint64_t capacity)
{
	if (layer_count_ == kMaxLayers)
		throw std::length_error("repeat filter: too many keys");
	Layer &layer = layers_[layer_count_];
	// A power of two of blocks (at least kBitsPerKey bits per key): blocks are masked, not divided.
	uint64_t blocks = 1;
	while (blocks * kBlockBits < capacity * kBitsPerKey)
		blocks <<= 1;
	uint64_t words = blocks * kBlockWords;
	layer.words = alloc_(context_, static_cast<size_t>(words));
	layer.blocks = blocks;
	layer.capacity = capacity;
	layer.count = 0;
	bytes_ += static_cast<size_t>(words) * sizeof(uint64_t);
	layer_count_++;
}

// A key's probes all fall in one block of one cache line: one memory access per layer.
bool
RepeatFilter::contains(const Layer &layer, uint64_t h1, uint64_t h2) const
{
	const uint64_t *block = layer.words + (h1 & (layer.blocks - 1)) * kBlockWords;
	for (int i = 0; i < kProbes; i++) {
		unsigned bit = static_cast<unsigned>(h2 >> (i * 9)) & (kBlockBits - 1);
		if ((block[bit >> 6] & (uint64_t{1} << (bit & 63))) == 0)
			return false;
	}
	return true;
}

void
RepeatFilter::add(Layer &layer, uint64_t h1, uint64_t h2)
{
	uint64_t *block = layer.words + (h1 & (layer.blocks - 1)) * kBlockWords;
	for (int i = 0; i < kProbes; i++) {
		unsigned bit = static_cast<unsigned>(h2 >> (i * 9)) & (kBlockBits - 1);
		block[bit >> 6] |= uint64_t{1} << (bit & 63);
	}
	layer.count++;
}

bool
RepeatFilter::test_and_add(uint64_t key_hash)
{
	uint64_t h1 = key_hash;
	uint64_t h2 = mix(key_hash);  // the bits within the block: independent of the block's number
	for (int i = layer_count_ - 1; i >= 0; i--)
		if (contains(layers_[i], h1, h2))
			return true;
	Layer *last = &layers_[layer_count_ - 1];
	if (last->count >= last->capacity) {
		add_layer(last->capacity * kGrowth);
		last = &layers_[layer_count_ - 1];
	}
	add(*last, h1, h2);
	return false;
}

}  // namespace ia
