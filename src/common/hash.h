// Non-cryptographic hashing of bytes, for identifiers and fingerprints that must be
// the same on every machine and in every version (never std::hash, which is neither).
#pragma once

#include <cstdint>
#include <string_view>

namespace scisearch {

// 64-bit FNV-1a of `text`, continuing from `hash` (chain calls to hash several
// pieces). Pure; any thread.
inline uint64_t Fnv1a(std::string_view text, uint64_t hash = 0xcbf29ce484222325ull) {
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 0x100000001b3ull;
  }
  return hash;
}

}  // namespace scisearch
