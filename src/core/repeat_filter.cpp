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

RepeatFilter::RepeatFilter(Allocator alloc, void *context, uint64_t first_capacity, size_t max_bytes)
    : alloc_(alloc), context_(context), max_bytes_(max_bytes)
{
	uint64_t capacity = first_capacity < 1024 ? 1024 : first_capacity;
	const uint64_t fits = static_cast<uint64_t>(max_bytes_) * 8 / kBitsPerKey / kBlockBits * kBlockBits;
	if (capacity > fits)
		capacity = fits;
	if (!add_layer(capacity))
		throw std::length_error("repeat filter: max_bytes is smaller than a layer of 1024 keys");
}

// Adds a layer for `capacity` keys; false (and nothing added) when it would pass max_bytes.
bool
RepeatFilter::add_layer(uint64_t capacity)
{
	if (layer_count_ == kMaxLayers)
		return false;
	uint64_t blocks = (capacity * kBitsPerKey + kBlockBits - 1) / kBlockBits;
	uint64_t words = blocks * kBlockWords;
	size_t bytes = static_cast<size_t>(words) * sizeof(uint64_t);
	if (bytes_ + bytes > max_bytes_)
		return false;
	Layer &layer = layers_[layer_count_];
	layer.words = alloc_(context_, static_cast<size_t>(words));
	layer.blocks = blocks;
	layer.capacity = capacity;
	layer.count = 0;
	bytes_ += bytes;
	layer_count_++;
	return true;
}

// A key's probes all fall in one block of one cache line: one memory access per layer.
bool
RepeatFilter::contains(const Layer &layer, uint64_t h1, uint64_t h2) const
{
	const uint64_t *block = layer.words + (h1 % layer.blocks) * kBlockWords;
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
	uint64_t *block = layer.words + (h1 % layer.blocks) * kBlockWords;
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
	if (last->count >= last->capacity && add_layer(last->capacity * kGrowth))
		last = &layers_[layer_count_ - 1];
	add(*last, h1, h2);  // past max_bytes, the last layer fills beyond its capacity
	return false;
}

}  // namespace ia
