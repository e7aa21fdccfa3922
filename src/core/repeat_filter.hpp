// A filter that tells, for a stream of keys, whether a key may have come before: a scalable Bloom
// filter (no false negatives; well under 1% false positives while within its memory bound). The
// plan uses it to find duplicate record keys in one pass without a hash table of every key: only
// the keys it flags are checked exactly.
//
// The filter does not own its memory: the caller allocates the word arrays (so that PostgreSQL can
// free them with the query's memory context). Pure C++, no PostgreSQL headers.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ia {

class RepeatFilter {
public:
	// alloc(context, words) returns `words` zeroed 64-bit words that live as long as the filter is
	// used, or throws. A plain function pointer: the filter owns nothing that needs destroying.
	using Allocator = uint64_t *(*)(void *context, size_t words);

	// first_capacity: the keys expected (the first layer's size). max_bytes bounds the filter's
	// memory: the first layer is made smaller to fit, and once a new layer would pass it, the last
	// layer takes the further keys itself; its false positive rate rises instead (still no false
	// negatives).
	RepeatFilter(Allocator alloc, void *context, uint64_t first_capacity = 1u << 20, size_t max_bytes = 32u << 20);

	// True when `key_hash` may have been added before (then it is not added again); false when it
	// certainly was not (it is added now). key_hash: a well-mixed 64-bit hash of the key.
	bool test_and_add(uint64_t key_hash);

	// Memory taken by the word arrays, in bytes.
	size_t bytes() const { return bytes_; }

	static constexpr int kMaxLayers = 40;

private:
	// Each layer holds up to `capacity` keys at 16 bits per key, in blocks of 512 bits (a cache line)
	// with 7 probes per key inside one block: about 0.1-0.2% false positives when full. A full layer
	// is followed by one twice its size: the memory stays under twice 16 bits per key (10M keys from
	// a first layer of 1M: 30 MB; from a first layer sized for them: 20 MB), and the false positive
	// rates of the layers add up.
	struct Layer {
		uint64_t *words = nullptr;
		uint64_t blocks = 0;
		uint64_t capacity = 0;
		uint64_t count = 0;
	};
	static constexpr int kProbes = 7;
	static constexpr uint64_t kBitsPerKey = 16;
	static constexpr uint64_t kBlockBits = 512;
	static constexpr uint64_t kBlockWords = kBlockBits / 64;
	static constexpr uint64_t kGrowth = 2;

	bool contains(const Layer &layer, uint64_t h1, uint64_t h2) const;
	void add(Layer &layer, uint64_t h1, uint64_t h2);
	bool add_layer(uint64_t capacity);

	Allocator alloc_;
	void *context_;
	size_t max_bytes_;
	Layer layers_[kMaxLayers];
	int layer_count_ = 0;
	size_t bytes_ = 0;
};

}  // namespace ia
