// Unicode NFC normalization (internal to text/), used by vocabularies whose Hugging Face
// tokenizer has an NFC normalizer (Qwen2). Tables come from tools/gen_unicode_tables.py.
// Pure functions; the composition table is built once on first use; safe from any thread.
// Bytes that are not valid UTF-8 are copied through unchanged and act as starters.
#pragma once

#include <string>
#include <string_view>

namespace tracemark::text {

// True if text is certainly unchanged by NFC (every character is NFC-stable).
bool IsNfcQuick(std::string_view text);

// Appends NFC(text) to *out.
void NormalizeNfc(std::string_view text, std::string* out);

}  // namespace tracemark::text
