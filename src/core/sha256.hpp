// SHA-256 (FIPS 180-4), for identifiers that must not collide (derived event ids). Pure C++.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace ia {

class Sha256 {
public:
    Sha256();
    void update(std::string_view data);
    std::array<uint8_t, 32> finish();  // the object is spent afterwards

private:
    void block(const uint8_t* p);
    uint32_t h_[8];
    uint8_t buf_[64];
    std::size_t buffered_ = 0;
    uint64_t total_bytes_ = 0;
};

// Lower-case hex of the digest of `data`.
std::string sha256_hex(std::string_view data);

}  // namespace ia

#include "core/cpp_only.hpp"
