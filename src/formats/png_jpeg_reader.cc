// PNG and JPEG readers.
//
// Metadata is parsed at open by walking the file's own structure (PNG chunks, JPEG marker
// segments) with bounds-checked reads: no pixel is decoded until Read. Read decodes with libpng
// or libjpeg, row by row up to the last selected row, and returns the selection.
//
// Both C libraries report errors by longjmp. Each decode therefore runs in a function whose
// locals are all trivially destructible, called with every buffer already allocated by the
// caller; the caller owns the library structures through RAII guards and frees them after the
// function returns, whichever way it returns. The libraries never print and never exit().
//
// Element types:
//   PNG gray 1/2/4/8-bit -> uint8 holding the raw sample values (not rescaled to 0..255);
//   gray 16-bit -> uint16 (PNG stores big-endian; returned little-endian); gray+alpha ->
//   the gray channel only (alpha dropped); RGB -> rgb8; RGBA -> rgba8 (16-bit colour samples
//   are scaled to 8 bits, as there is no 16-bit colour type); palette -> uint8 gray when every
//   palette entry is grey (R = G = B), else rgb8 (palette transparency dropped).
//   JPEG 1 component -> uint8; 3 components -> rgb8 (libjpeg's YCbCr -> RGB); 12-bit and
//   CMYK/YCCK JPEGs are refused as unsupported.
// Images whose decoded size exceeds 1 GiB are refused (kUnsupported) at open.
#include <cstddef>
#include <cstdio>

// jpeglib.h uses size_t and FILE without declaring them.
#include <jpeglib.h>
#include <png.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>

#include "formats/byte_source.h"
#include "formats/metadata_lookup.h"
#include "formats/normalise.h"
#include "formats/readers.h"
#include "formats/slab_io.h"
#include "formats/text.h"

namespace scisearch::formats {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kMaxDecodedBytes = 1ull << 30;
// Text chunks inflate to at most this (a zTXt bomb must not exhaust memory).
constexpr uLongf kMaxInflatedText = 1u << 20;
// Bounds on the structure walks, against hostile files made of millions of tiny chunks.
constexpr int kMaxPngChunks = 100000;
constexpr int kMaxJpegSegments = 10000;
constexpr uint16_t kMaxIfdEntries = 1000;
constexpr size_t kMaxExifArray = 256;

// Text that claims to be UTF-8 (PNG iTXt): kept when it is valid UTF-8 without control
// characters other than tab and newline, else escaped byte by byte.
std::string Utf8OrEscaped(std::string_view text) {
  const bool has_control = std::any_of(text.begin(), text.end(), [](char c) {
    return static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t';
  });
  if (has_control || !IsValidUtf8(text)) return EscapeNonPrintableAscii(text);
  return std::string(text);
}

// Adds `value` under `key`; a repeated key becomes an array of its values in file order.
void AddRepeatable(Metadata& object, const std::string& key, Metadata value) {
  auto it = object.find(key);
  if (it == object.end()) {
    object[key] = std::move(value);
  } else if (it->is_array()) {
    it->push_back(std::move(value));
  } else {
    Metadata both = Metadata::array({*it, std::move(value)});
    *it = std::move(both);
  }
}

// Converts the selected columns (and the row/column steps) of decoded rows into the slab.
// `rows` holds slab.count[0] decoded rows of `row_bytes` each, already the selected rows.
NdArray SliceColumns(const std::vector<uint8_t>& rows, size_t row_bytes, size_t pixel_bytes,
                     DType dtype, const Hyperslab& slab) {
  NdArray out;
  out.dtype = dtype;
  out.shape = slab.count;
  const uint64_t count_y = uint64_t(slab.count[0]);
  const uint64_t count_x = uint64_t(slab.count[1]);
  out.bytes.resize(count_y * count_x * pixel_bytes);
  for (uint64_t r = 0; r < count_y; ++r) {
    const uint8_t* row = rows.data() + r * row_bytes;
    if (slab.step[1] == 1) {  // the columns are contiguous: one copy, not one per pixel
      std::memcpy(out.bytes.data() + r * count_x * pixel_bytes,
                  row + uint64_t(slab.start[1]) * pixel_bytes, count_x * pixel_bytes);
      continue;
    }
    for (uint64_t c = 0; c < count_x; ++c) {
      const uint64_t x = uint64_t(slab.start[1]) + c * uint64_t(slab.step[1]);
      std::memcpy(out.bytes.data() + (r * count_x + c) * pixel_bytes, row + x * pixel_bytes,
                  pixel_bytes);
    }
  }
  return out;
}

// The index among the selected rows of image row `y`, or -1 when the slab skips it.
int64_t SelectedRow(const Hyperslab& slab, int64_t y) {
  if (y < slab.start[0]) return -1;
  const int64_t d = y - slab.start[0];
  if (d % slab.step[0] != 0) return -1;
  const int64_t i = d / slab.step[0];
  return i < slab.count[0] ? i : -1;
}

std::vector<Axis> ImageAxes(int64_t height, int64_t width) {
  return {Axis{"y", height, 1.0, 0.0, "", false}, Axis{"x", width, 1.0, 0.0, "", false}};
}

Status CheckDecodedSize(const std::string& name, uint64_t width, uint64_t height, DType dtype) {
  const uint64_t bytes = width * height * DTypeSize(dtype);  // both < 2^32: no overflow
  if (bytes > kMaxDecodedBytes) {
    return Status::Unsupported(name + ": decoded image of " + std::to_string(width) + " x " +
                               std::to_string(height) + " pixels (" + std::to_string(bytes) +
                               " bytes) is larger than the 1 GiB this reader decodes");
  }
  return Status::Ok();
}

// ======================================================================================
// PNG
// ======================================================================================

struct PngLayout {
  uint32_t width = 0;
  uint32_t height = 0;
  int bit_depth = 0;
  int color_type = 0;
  int interlace = 0;
  DType dtype = DType::kUInt8;
  bool gray_palette = false;
  std::vector<std::array<uint8_t, 3>> palette;
  size_t row_bytes = 0;    // bytes per row libpng delivers after our transforms
  size_t pixel_bytes = 0;  // bytes per pixel libpng delivers
};

Result<std::string> InflateText(const uint8_t* data, size_t size, const std::string& what) {
  std::string out;
  out.resize(std::min<uLongf>(kMaxInflatedText, std::max<uLongf>(1024, uLongf(size) * 8)));
  while (true) {
    uLongf out_size = out.size();
    const int rc = uncompress(reinterpret_cast<Bytef*>(out.data()), &out_size, data, uLong(size));
    if (rc == Z_OK) {
      out.resize(out_size);
      return out;
    }
    if (rc == Z_BUF_ERROR && out.size() < kMaxInflatedText) {
      out.resize(std::min<size_t>(kMaxInflatedText, out.size() * 4));
      continue;
    }
    if (rc == Z_BUF_ERROR) {
      return Status::Unsupported(what + " inflates to more than " +
                                 std::to_string(kMaxInflatedText) + " bytes");
    }
    return Status::Corrupt(what + ": compressed text is damaged (zlib error " + std::to_string(rc) +
                           ")");
  }
}

// Parses one text chunk (tEXt, zTXt or iTXt) into `text`.
Status ParsePngText(const std::string& type, const std::vector<uint8_t>& data,
                    const std::string& where, Metadata& text) {
  const auto* begin = reinterpret_cast<const char*>(data.data());
  const std::string_view all(begin, data.size());
  const size_t nul = all.find('\0');
  if (nul == std::string_view::npos || nul == 0 || nul > 79) {
    return Status::Corrupt(where + ": keyword is missing or longer than 79 bytes");
  }
  const std::string key = EscapeNonPrintableAscii(all.substr(0, nul));
  if (type == "tEXt") {
    AddRepeatable(text, key, EscapeNonPrintableAscii(all.substr(nul + 1)));
    return Status::Ok();
  }
  if (type == "zTXt") {
    if (nul + 2 > all.size()) return Status::Corrupt(where + ": no compression method");
    if (data[nul + 1] != 0) return Status::Corrupt(where + ": unknown compression method");
    SCISEARCH_ASSIGN_OR_RETURN(std::string value,
                               InflateText(data.data() + nul + 2, data.size() - nul - 2, where));
    AddRepeatable(text, key, EscapeNonPrintableAscii(value));
    return Status::Ok();
  }
  // iTXt: keyword \0 flag method language \0 translated keyword \0 text
  if (nul + 3 > all.size()) return Status::Corrupt(where + ": iTXt header is truncated");
  const bool compressed = data[nul + 1] != 0;
  size_t p = nul + 3;
  const size_t lang_end = all.find('\0', p);
  if (lang_end == std::string_view::npos) return Status::Corrupt(where + ": no language tag end");
  const size_t tkey_end = all.find('\0', lang_end + 1);
  if (tkey_end == std::string_view::npos) {
    return Status::Corrupt(where + ": no translated keyword end");
  }
  p = tkey_end + 1;
  std::string value;
  if (compressed) {
    if (data[nul + 2] != 0) return Status::Corrupt(where + ": unknown compression method");
    SCISEARCH_ASSIGN_OR_RETURN(value, InflateText(data.data() + p, data.size() - p, where));
  } else {
    value.assign(all.substr(p));
  }
  AddRepeatable(text, key, Utf8OrEscaped(value));
  return Status::Ok();
}

struct PngScan {
  PngLayout layout;
  Metadata metadata = Metadata::object();
  std::optional<double> pixel_size_m;  // from pHYs with unit metre
  std::optional<std::string> time;     // from tIME
};

Result<PngScan> ScanPng(const FileSource& source) {
  const std::string name = source.path().string();
  static constexpr uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  uint8_t signature[8];
  if (source.size() < 8) return Status::Corrupt(name + ": shorter than the PNG signature");
  SCISEARCH_RETURN_IF_ERROR(source.ReadAt(0, 8, signature));
  if (std::memcmp(signature, kSignature, 8) != 0) {
    return Status::Corrupt(name + ": no PNG signature");
  }
  PngScan scan;
  Metadata& m = scan.metadata;
  Metadata text = Metadata::object();
  Metadata other = Metadata::array();
  bool have_ihdr = false, have_idat = false, have_iend = false, have_trns = false;
  uint64_t pos = 8;
  int chunks = 0;
  while (!have_iend) {
    if (++chunks > kMaxPngChunks) {
      return Status::Unsupported(name + ": more than " + std::to_string(kMaxPngChunks) +
                                 " PNG chunks");
    }
    if (source.size() - pos < 12) {
      return Status::Corrupt(name + ": truncated: PNG chunk at byte " + std::to_string(pos) +
                             " runs past the end of the file (" + std::to_string(source.size()) +
                             " bytes) before IEND");
    }
    uint8_t head[8];
    SCISEARCH_RETURN_IF_ERROR(source.ReadAt(pos, 8, head));
    const uint32_t length = uint32_t(head[0]) << 24 | uint32_t(head[1]) << 16 |
                            uint32_t(head[2]) << 8 | uint32_t(head[3]);
    const std::string type(reinterpret_cast<const char*>(head + 4), 4);
    const std::string where =
        name + ": PNG chunk '" + EscapeNonPrintableAscii(type) + "' at byte " + std::to_string(pos);
    for (char ch : type) {
      if (!std::isalpha(static_cast<unsigned char>(ch))) {
        return Status::Corrupt(where + ": chunk type is not four letters");
      }
    }
    if (length > 0x7fffffffu || uint64_t(length) + 12 > source.size() - pos) {
      return Status::Corrupt(where + ": length " + std::to_string(length) +
                             " runs past the end of the file (" + std::to_string(source.size()) +
                             " bytes)");
    }
    if (!have_ihdr && type != "IHDR") return Status::Corrupt(where + ": IHDR must come first");
    const uint64_t data_pos = pos + 8;
    pos = data_pos + length + 4;
    if (type == "IDAT") {
      have_idat = true;
      continue;  // pixel data: libpng reads (and checks) it in Read
    }
    // Metadata chunks are small; check their CRC so that damage is reported here.
    SCISEARCH_ASSIGN_OR_RETURN(std::vector<uint8_t> data, source.ReadBytes(data_pos, length + 4));
    uLong crc = crc32(0, head + 4, 4);
    crc = crc32(crc, data.data(), length);
    const uint32_t stored = uint32_t(data[length]) << 24 | uint32_t(data[length + 1]) << 16 |
                            uint32_t(data[length + 2]) << 8 | uint32_t(data[length + 3]);
    if (stored != uint32_t(crc)) return Status::Corrupt(where + ": CRC mismatch");
    data.resize(length);
    ByteCursor c(data, ByteOrder::kBig, where);
    if (type == "IHDR") {
      if (have_ihdr) return Status::Corrupt(where + ": second IHDR");
      have_ihdr = true;
      if (length != 13) return Status::Corrupt(where + ": IHDR length is not 13");
      PngLayout& l = scan.layout;
      SCISEARCH_ASSIGN_OR_RETURN(l.width, c.Read<uint32_t>("width"));
      SCISEARCH_ASSIGN_OR_RETURN(l.height, c.Read<uint32_t>("height"));
      l.bit_depth = data[8];
      l.color_type = data[9];
      l.interlace = data[12];
      if (l.width == 0 || l.height == 0 || l.width > 0x7fffffffu || l.height > 0x7fffffffu) {
        return Status::Corrupt(where + ": image size " + std::to_string(l.width) + " x " +
                               std::to_string(l.height) + " is invalid");
      }
      const int d = l.bit_depth;
      bool depth_ok = false;
      switch (l.color_type) {
        case 0:
          depth_ok = d == 1 || d == 2 || d == 4 || d == 8 || d == 16;
          break;
        case 3:
          depth_ok = d == 1 || d == 2 || d == 4 || d == 8;
          break;
        case 2:
        case 4:
        case 6:
          depth_ok = d == 8 || d == 16;
          break;
        default:
          return Status::Corrupt(where + ": unknown colour type " + std::to_string(l.color_type));
      }
      if (!depth_ok) {
        return Status::Corrupt(where + ": bit depth " + std::to_string(d) +
                               " is invalid for colour type " + std::to_string(l.color_type));
      }
      if (data[10] != 0 || data[11] != 0 || l.interlace > 1) {
        return Status::Corrupt(where + ": unknown compression, filter or interlace method");
      }
      m["IHDR"] = {{"width", l.width},         {"height", l.height},
                   {"bit_depth", l.bit_depth}, {"color_type", l.color_type},
                   {"compression", data[10]},  {"filter", data[11]},
                   {"interlace", l.interlace}};
    } else if (type == "PLTE") {
      if (length % 3 != 0 || length == 0 || length > 768) {
        return Status::Corrupt(where + ": palette length " + std::to_string(length) +
                               " is not 3 x 1..256");
      }
      scan.layout.palette.resize(length / 3);
      bool gray = true;
      for (size_t i = 0; i < length / 3; ++i) {
        scan.layout.palette[i] = {data[3 * i], data[3 * i + 1], data[3 * i + 2]};
        gray = gray && data[3 * i] == data[3 * i + 1] && data[3 * i] == data[3 * i + 2];
      }
      scan.layout.gray_palette = gray;
      m["PLTE"] = {{"entries", length / 3}, {"grayscale", gray}};
    } else if (type == "tRNS") {
      have_trns = true;
      m["tRNS"] = {{"bytes", length}};
    } else if (type == "pHYs") {
      if (length != 9) return Status::Corrupt(where + ": pHYs length is not 9");
      SCISEARCH_ASSIGN_OR_RETURN(uint32_t px, c.Read<uint32_t>("pixels per unit X"));
      SCISEARCH_ASSIGN_OR_RETURN(uint32_t py, c.Read<uint32_t>("pixels per unit Y"));
      const int unit = data[8];
      m["pHYs"] = {{"pixels_per_unit_x", px},
                   {"pixels_per_unit_y", py},
                   {"unit", unit == 1   ? "metre"
                            : unit == 0 ? "unknown"
                                        : "invalid"}};
      if (unit == 1 && px > 0) scan.pixel_size_m = 1.0 / px;
    } else if (type == "tIME") {
      if (length != 7) return Status::Corrupt(where + ": tIME length is not 7");
      SCISEARCH_ASSIGN_OR_RETURN(uint16_t year, c.Read<uint16_t>("year"));
      const int mo = data[2], day = data[3], h = data[4], mi = data[5], s = data[6];
      char buf[48];
      std::snprintf(buf, sizeof(buf), "%04u-%02d-%02dT%02d:%02d:%02dZ", year, mo, day, h, mi, s);
      m["tIME"] = buf;
      if (mo >= 1 && mo <= 12 && day >= 1 && day <= 31 && h < 24 && mi < 60 && s <= 60) {
        scan.time = buf;
      }
    } else if (type == "gAMA") {
      if (length != 4) return Status::Corrupt(where + ": gAMA length is not 4");
      SCISEARCH_ASSIGN_OR_RETURN(uint32_t g, c.Read<uint32_t>("gamma"));
      m["gAMA"] = g / 100000.0;
    } else if (type == "sRGB") {
      if (length != 1) return Status::Corrupt(where + ": sRGB length is not 1");
      m["sRGB"] = data[0];
    } else if (type == "tEXt" || type == "zTXt" || type == "iTXt") {
      SCISEARCH_RETURN_IF_ERROR(ParsePngText(type, data, where, text));
    } else if (type == "IEND") {
      have_iend = true;
    } else {
      other.push_back(EscapeNonPrintableAscii(type));
    }
  }
  if (!have_idat) return Status::Corrupt(name + ": no IDAT chunk (no pixel data)");
  PngLayout& l = scan.layout;
  if (l.color_type == 3 && l.palette.empty()) {
    return Status::Corrupt(name + ": palette image without a PLTE chunk");
  }
  if (!text.empty()) m["text"] = std::move(text);
  if (!other.empty()) m["other_chunks"] = std::move(other);
  (void)have_trns;
  switch (l.color_type) {
    case 0:
    case 4:
      l.dtype = l.bit_depth == 16 ? DType::kUInt16 : DType::kUInt8;
      l.pixel_bytes = l.bit_depth == 16 ? 2 : 1;
      break;
    case 2:
      l.dtype = DType::kRGB8;
      l.pixel_bytes = 3;
      break;
    case 6:
      l.dtype = DType::kRGBA8;
      l.pixel_bytes = 4;
      break;
    case 3:
      l.dtype = l.gray_palette ? DType::kUInt8 : DType::kRGB8;
      l.pixel_bytes = 1;  // libpng delivers indices; Read maps them through the palette
      break;
  }
  l.row_bytes = size_t(l.width) * l.pixel_bytes;
  SCISEARCH_RETURN_IF_ERROR(CheckDecodedSize(name, l.width, l.height, l.dtype));
  return scan;
}

// State shared with libpng's callbacks. Trivially destructible: it lives across setjmp.
struct PngDecodeState {
  const FileSource* source = nullptr;
  uint64_t position = 0;
  char error[256] = {};
};

void PngError(png_structp png, png_const_charp message) {
  auto* state = static_cast<PngDecodeState*>(png_get_error_ptr(png));
  std::snprintf(state->error, sizeof(state->error), "%s", message ? message : "libpng error");
  png_longjmp(png, 1);
}
void PngWarning(png_structp, png_const_charp) {}  // warnings are not errors; stay silent

void PngReadData(png_structp png, png_bytep out, size_t length) {
  auto* state = static_cast<PngDecodeState*>(png_get_io_ptr(png));
  const uint64_t size = state->source->size();
  if (state->position > size || length > size - state->position ||
      !state->source->ReadAt(state->position, length, out).ok()) {
    png_error(png, "PNG data is truncated");
  }
  state->position += length;
}

// Owns a libpng read struct and its info struct.
class PngHandle {
 public:
  explicit PngHandle(PngDecodeState* state) {
    png_ = png_create_read_struct(PNG_LIBPNG_VER_STRING, state, PngError, PngWarning);
    if (png_ != nullptr) info_ = png_create_info_struct(png_);
  }
  ~PngHandle() {
    if (png_ != nullptr)
      png_destroy_read_struct(&png_, info_ != nullptr ? &info_ : nullptr, nullptr);
  }
  PngHandle(const PngHandle&) = delete;
  PngHandle& operator=(const PngHandle&) = delete;
  png_structp png() const { return png_; }
  png_infop info() const { return info_; }

 private:
  png_structp png_ = nullptr;
  png_infop info_ = nullptr;
};

// Decodes rows 0..last_row (non-interlaced: selected rows go to `rows_out` in selection order,
// `scratch` holds one row) or the whole image into `rows_out` (interlaced, through
// `row_pointers`). Only trivially destructible locals: libpng may longjmp out of any call.
bool DecodePngRows(png_structp png, png_infop info, const PngLayout* layout, const Hyperslab* slab,
                   int64_t last_row, uint8_t* rows_out, uint8_t* scratch, png_bytep* row_pointers) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
  png_read_info(png, info);
  if (layout->bit_depth < 8) png_set_packing(png);
  if (layout->bit_depth == 16) {
    if (layout->color_type == 0 || layout->color_type == 4) {
      png_set_swap(png);
    } else {
      png_set_scale_16(png);
    }
  }
  if (layout->color_type == 4) png_set_strip_alpha(png);
  if (layout->interlace != 0) png_set_interlace_handling(png);
  png_read_update_info(png, info);
  if (png_get_rowbytes(png, info) != layout->row_bytes) {
    png_error(png, "decoded row size differs from the header's");
  }
  if (layout->interlace != 0) {
    png_read_image(png, row_pointers);
  } else {
    for (int64_t y = 0; y <= last_row; ++y) {
      png_read_row(png, scratch, nullptr);
      const int64_t i = SelectedRow(*slab, y);
      if (i >= 0)
        std::memcpy(rows_out + uint64_t(i) * layout->row_bytes, scratch, layout->row_bytes);
    }
  }
  return true;
}

class PngReader : public DatasetReader {
 public:
  PngReader(FileSource source, Dataset dataset, PngLayout layout)
      : source_(std::move(source)), dataset_(std::move(dataset)), layout_(std::move(layout)) {}

  const Dataset& dataset() const override { return dataset_; }
  Dataset TakeDataset() override { return std::move(dataset_); }

  Result<NdArray> Read(size_t signal_index, const Hyperslab& slab) override {
    const std::string name = source_.path().string();
    SCISEARCH_RETURN_IF_ERROR(CheckSignalIndex(dataset_, signal_index));
    const Signal& signal = dataset_.signals[0];
    SCISEARCH_RETURN_IF_ERROR(slab.Validate(signal.shape));
    if (slab.count[0] == 0 || slab.count[1] == 0) {
      NdArray empty;
      empty.dtype = signal.dtype;
      empty.shape = slab.count;
      return empty;
    }
    const int64_t last_row = slab.start[0] + (slab.count[0] - 1) * slab.step[0];
    const bool interlaced = layout_.interlace != 0;
    const uint64_t stored_rows = interlaced ? layout_.height : uint64_t(slab.count[0]);
    std::vector<uint8_t> rows(stored_rows * layout_.row_bytes);
    std::vector<uint8_t> scratch(interlaced ? 0 : layout_.row_bytes);
    std::vector<png_bytep> pointers(interlaced ? layout_.height : 0);
    for (size_t y = 0; y < pointers.size(); ++y) pointers[y] = rows.data() + y * layout_.row_bytes;

    PngDecodeState state;
    state.source = &source_;
    PngHandle handle(&state);
    if (handle.png() == nullptr || handle.info() == nullptr) {
      return Status::Internal(name + ": libpng could not allocate its decoder");
    }
    png_set_read_fn(handle.png(), &state, PngReadData);
    if (!DecodePngRows(handle.png(), handle.info(), &layout_, &slab, last_row, rows.data(),
                       scratch.data(), pointers.data())) {
      return Status::Corrupt(name + ": PNG decoding failed: " + state.error);
    }
    if (interlaced) {
      // Keep the selected rows only, in selection order.
      std::vector<uint8_t> selected(uint64_t(slab.count[0]) * layout_.row_bytes);
      for (int64_t i = 0; i < slab.count[0]; ++i) {
        std::memcpy(selected.data() + uint64_t(i) * layout_.row_bytes,
                    rows.data() + uint64_t(slab.start[0] + i * slab.step[0]) * layout_.row_bytes,
                    layout_.row_bytes);
      }
      rows.swap(selected);
    }
    NdArray out = SliceColumns(rows, layout_.row_bytes, layout_.pixel_bytes,
                               layout_.color_type == 3 ? DType::kUInt8 : signal.dtype, slab);
    if (layout_.color_type == 3) {
      // Palette indices to grey values or RGB triples. Indices past the palette are black.
      const size_t n = out.bytes.size();
      const size_t out_size = layout_.gray_palette ? 1 : 3;
      std::vector<uint8_t> mapped(n * out_size);
      for (size_t i = 0; i < n; ++i) {
        const uint8_t index = out.bytes[i];
        std::array<uint8_t, 3> rgb = {0, 0, 0};
        if (index < layout_.palette.size()) rgb = layout_.palette[index];
        std::memcpy(mapped.data() + i * out_size, rgb.data(), out_size);
      }
      out.bytes.swap(mapped);
      out.dtype = signal.dtype;
    }
    return out;
  }

 private:
  FileSource source_;
  Dataset dataset_;
  PngLayout layout_;
};

// ======================================================================================
// JPEG
// ======================================================================================

struct JpegLayout {
  uint32_t width = 0;
  uint32_t height = 0;
  int components = 0;
  DType dtype = DType::kUInt8;
};

// EXIF tag names for the tags IFD0 and the Exif sub-IFD commonly carry.
const char* ExifTagName(uint16_t tag) {
  switch (tag) {
    case 0x010E:
      return "ImageDescription";
    case 0x010F:
      return "Make";
    case 0x0110:
      return "Model";
    case 0x0112:
      return "Orientation";
    case 0x011A:
      return "XResolution";
    case 0x011B:
      return "YResolution";
    case 0x0128:
      return "ResolutionUnit";
    case 0x0131:
      return "Software";
    case 0x0132:
      return "DateTime";
    case 0x013B:
      return "Artist";
    case 0x0213:
      return "YCbCrPositioning";
    case 0x8298:
      return "Copyright";
    case 0x8769:
      return "ExifIFDPointer";
    case 0x8825:
      return "GPSInfoIFDPointer";
    case 0x829A:
      return "ExposureTime";
    case 0x829D:
      return "FNumber";
    case 0x8822:
      return "ExposureProgram";
    case 0x8827:
      return "ISOSpeedRatings";
    case 0x9000:
      return "ExifVersion";
    case 0x9003:
      return "DateTimeOriginal";
    case 0x9004:
      return "DateTimeDigitized";
    case 0x9010:
      return "OffsetTime";
    case 0x9011:
      return "OffsetTimeOriginal";
    case 0x9201:
      return "ShutterSpeedValue";
    case 0x9202:
      return "ApertureValue";
    case 0x9204:
      return "ExposureBiasValue";
    case 0x9207:
      return "MeteringMode";
    case 0x9209:
      return "Flash";
    case 0x920A:
      return "FocalLength";
    case 0x927C:
      return "MakerNote";
    case 0x9286:
      return "UserComment";
    case 0xA001:
      return "ColorSpace";
    case 0xA002:
      return "PixelXDimension";
    case 0xA003:
      return "PixelYDimension";
    case 0xA402:
      return "ExposureMode";
    case 0xA403:
      return "WhiteBalance";
    case 0xA405:
      return "FocalLengthIn35mmFilm";
    case 0xA420:
      return "ImageUniqueID";
    case 0xA430:
      return "CameraOwnerName";
    case 0xA431:
      return "BodySerialNumber";
    case 0xA434:
      return "LensModel";
    default:
      return nullptr;
  }
}

// Reads the value of one IFD entry as JSON (nullopt for values not worth keeping).
Result<std::optional<Metadata>> ExifValue(ByteCursor& tiff, uint16_t type, uint32_t count,
                                          uint32_t value_or_offset_pos) {
  static constexpr uint32_t kTypeSize[] = {0, 1, 1, 2, 4, 8, 1, 1, 2, 4, 8, 4, 8};
  if (type == 0 || type > 12) return std::optional<Metadata>();
  const uint64_t bytes = uint64_t(kTypeSize[type]) * count;
  if (count == 0) return std::optional<Metadata>();
  uint64_t at = value_or_offset_pos;
  if (bytes > 4) {
    SCISEARCH_RETURN_IF_ERROR(tiff.Seek(value_or_offset_pos, "EXIF value offset"));
    SCISEARCH_ASSIGN_OR_RETURN(uint32_t offset, tiff.Read<uint32_t>("EXIF value offset"));
    at = offset;
  }
  if (at > tiff.size() || bytes > tiff.size() - at) {
    return tiff.Error("EXIF value of " + std::to_string(bytes) + " bytes at " + std::to_string(at) +
                      " runs past the EXIF block");
  }
  SCISEARCH_RETURN_IF_ERROR(tiff.Seek(at, "EXIF value"));
  if (type == 2 || type == 7) {  // ASCII, or UNDEFINED kept when it is short text-like
    if (type == 7 && bytes > 64) return std::optional<Metadata>();
    SCISEARCH_ASSIGN_OR_RETURN(std::string s, tiff.ReadString(bytes, "EXIF string"));
    const size_t nul = s.find('\0');
    if (nul != std::string::npos) s.resize(nul);
    return std::optional<Metadata>(EscapeNonPrintableAscii(TrimSpace(s)));
  }
  if (count > kMaxExifArray) return std::optional<Metadata>();
  Metadata values = Metadata::array();
  for (uint32_t i = 0; i < count; ++i) {
    Metadata v;
    switch (type) {
      case 1: {
        SCISEARCH_ASSIGN_OR_RETURN(uint8_t x, tiff.Read<uint8_t>("EXIF byte"));
        v = x;
        break;
      }
      case 6: {
        SCISEARCH_ASSIGN_OR_RETURN(int8_t x, tiff.Read<int8_t>("EXIF sbyte"));
        v = x;
        break;
      }
      case 3: {
        SCISEARCH_ASSIGN_OR_RETURN(uint16_t x, tiff.Read<uint16_t>("EXIF short"));
        v = x;
        break;
      }
      case 8: {
        SCISEARCH_ASSIGN_OR_RETURN(int16_t x, tiff.Read<int16_t>("EXIF sshort"));
        v = x;
        break;
      }
      case 4: {
        SCISEARCH_ASSIGN_OR_RETURN(uint32_t x, tiff.Read<uint32_t>("EXIF long"));
        v = x;
        break;
      }
      case 9: {
        SCISEARCH_ASSIGN_OR_RETURN(int32_t x, tiff.Read<int32_t>("EXIF slong"));
        v = x;
        break;
      }
      case 5: {
        SCISEARCH_ASSIGN_OR_RETURN(uint32_t num, tiff.Read<uint32_t>("EXIF rational"));
        SCISEARCH_ASSIGN_OR_RETURN(uint32_t den, tiff.Read<uint32_t>("EXIF rational"));
        v = den == 0 ? Metadata(nullptr) : Metadata(double(num) / den);
        break;
      }
      case 10: {
        SCISEARCH_ASSIGN_OR_RETURN(int32_t num, tiff.Read<int32_t>("EXIF srational"));
        SCISEARCH_ASSIGN_OR_RETURN(int32_t den, tiff.Read<int32_t>("EXIF srational"));
        v = den == 0 ? Metadata(nullptr) : Metadata(double(num) / den);
        break;
      }
      case 11: {
        SCISEARCH_ASSIGN_OR_RETURN(float x, tiff.Read<float>("EXIF float"));
        v = std::isfinite(x) ? Metadata(x) : Metadata(nullptr);
        break;
      }
      case 12: {
        SCISEARCH_ASSIGN_OR_RETURN(double x, tiff.Read<double>("EXIF double"));
        v = std::isfinite(x) ? Metadata(x) : Metadata(nullptr);
        break;
      }
    }
    values.push_back(std::move(v));
  }
  if (values.size() == 1) return std::optional<Metadata>(values[0]);
  return std::optional<Metadata>(std::move(values));
}

// Parses one IFD at `offset` into `out`; returns the Exif sub-IFD offset when IFD0 has one.
Result<std::optional<uint32_t>> ParseIfd(ByteCursor& tiff, uint32_t offset, Metadata& out) {
  SCISEARCH_RETURN_IF_ERROR(tiff.Seek(offset, "EXIF IFD"));
  SCISEARCH_ASSIGN_OR_RETURN(uint16_t entries, tiff.Read<uint16_t>("EXIF IFD entry count"));
  if (entries > kMaxIfdEntries) {
    return tiff.Error("EXIF IFD with " + std::to_string(entries) + " entries");
  }
  std::optional<uint32_t> exif_ifd;
  for (uint16_t e = 0; e < entries; ++e) {
    const size_t entry = offset + 2 + size_t(e) * 12;
    SCISEARCH_RETURN_IF_ERROR(tiff.Seek(entry, "EXIF IFD entry"));
    SCISEARCH_ASSIGN_OR_RETURN(uint16_t tag, tiff.Read<uint16_t>("EXIF tag"));
    SCISEARCH_ASSIGN_OR_RETURN(uint16_t type, tiff.Read<uint16_t>("EXIF type"));
    SCISEARCH_ASSIGN_OR_RETURN(uint32_t count, tiff.Read<uint32_t>("EXIF count"));
    if (tag == 0x927C) continue;  // MakerNote: vendor binary
    SCISEARCH_ASSIGN_OR_RETURN(std::optional<Metadata> value,
                               ExifValue(tiff, type, count, uint32_t(entry + 8)));
    if (!value) continue;
    if (tag == 0x8769 && value->is_number_unsigned()) exif_ifd = value->get<uint32_t>();
    const char* known = ExifTagName(tag);
    char unknown[16];
    std::snprintf(unknown, sizeof(unknown), "Tag 0x%04X", tag);
    out[known != nullptr ? known : unknown] = std::move(*value);
  }
  return exif_ifd;
}

// EXIF APP1 payload (after "Exif\0\0"): a TIFF header, IFD0 and the Exif sub-IFD.
Result<Metadata> ParseExif(const uint8_t* data, size_t size, const std::string& where) {
  if (size < 8) return Status::Corrupt(where + ": EXIF block shorter than its TIFF header");
  ByteOrder order;
  if (data[0] == 'I' && data[1] == 'I') {
    order = ByteOrder::kLittle;
  } else if (data[0] == 'M' && data[1] == 'M') {
    order = ByteOrder::kBig;
  } else {
    return Status::Corrupt(where + ": EXIF block has no II/MM byte order mark");
  }
  ByteCursor tiff(data, size, order, where);
  SCISEARCH_RETURN_IF_ERROR(tiff.Seek(2, "EXIF magic"));
  SCISEARCH_ASSIGN_OR_RETURN(uint16_t magic, tiff.Read<uint16_t>("EXIF magic"));
  if (magic != 42) return Status::Corrupt(where + ": EXIF TIFF magic is not 42");
  SCISEARCH_ASSIGN_OR_RETURN(uint32_t ifd0, tiff.Read<uint32_t>("EXIF IFD0 offset"));
  Metadata out = Metadata::object();
  Metadata ifd0_tags = Metadata::object();
  SCISEARCH_ASSIGN_OR_RETURN(std::optional<uint32_t> exif_offset, ParseIfd(tiff, ifd0, ifd0_tags));
  out["IFD0"] = std::move(ifd0_tags);
  if (exif_offset && *exif_offset != ifd0) {
    Metadata exif_tags = Metadata::object();
    SCISEARCH_ASSIGN_OR_RETURN(std::optional<uint32_t> ignored,
                               ParseIfd(tiff, *exif_offset, exif_tags));
    (void)ignored;
    out["Exif"] = std::move(exif_tags);
  }
  return out;
}

// "2024:03:05 10:11:12" (EXIF) -> "2024-03-05T10:11:12".
std::optional<std::string> IsoFromExif(const std::string& text) {
  if (text.size() < 19 || text[4] != ':' || text[7] != ':' || text[10] != ' ') {
    return ParseDateTime(text);
  }
  std::string iso = text.substr(0, 19);
  iso[4] = '-';
  iso[7] = '-';
  iso[10] = 'T';
  return ParseDateTime(iso);
}

struct JpegScan {
  JpegLayout layout;
  Metadata metadata = Metadata::object();
};

Result<JpegScan> ScanJpeg(const FileSource& source) {
  const std::string name = source.path().string();
  uint8_t soi[2];
  if (source.size() < 4) return Status::Corrupt(name + ": shorter than a JPEG header");
  SCISEARCH_RETURN_IF_ERROR(source.ReadAt(0, 2, soi));
  if (soi[0] != 0xFF || soi[1] != 0xD8) return Status::Corrupt(name + ": no JPEG SOI marker");
  JpegScan scan;
  Metadata& m = scan.metadata;
  Metadata comments = Metadata::array();
  bool have_sof = false;
  uint64_t pos = 2;
  for (int segments = 0;; ++segments) {
    if (segments > kMaxJpegSegments) {
      return Status::Unsupported(name + ": more than " + std::to_string(kMaxJpegSegments) +
                                 " JPEG marker segments before the image data");
    }
    // Markers may be preceded by fill bytes 0xFF.
    uint8_t marker = 0;
    while (true) {
      if (pos + 2 > source.size()) {
        return Status::Corrupt(name + ": truncated: JPEG ends at byte " +
                               std::to_string(source.size()) + " before its image data (SOS)");
      }
      uint8_t two[2];
      SCISEARCH_RETURN_IF_ERROR(source.ReadAt(pos, 2, two));
      if (two[0] != 0xFF) {
        return Status::Corrupt(name + ": expected a JPEG marker at byte " + std::to_string(pos));
      }
      if (two[1] == 0xFF) {
        ++pos;
        continue;
      }
      marker = two[1];
      pos += 2;
      break;
    }
    if (marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7) || marker == 0x01) continue;
    if (marker == 0xD9) return Status::Corrupt(name + ": JPEG ends (EOI) before any image data");
    if (pos + 2 > source.size()) {
      return Status::Corrupt(name + ": truncated: JPEG segment length at byte " +
                             std::to_string(pos) + " is past the end of the file");
    }
    uint8_t len_bytes[2];
    SCISEARCH_RETURN_IF_ERROR(source.ReadAt(pos, 2, len_bytes));
    const uint32_t length = uint32_t(len_bytes[0]) << 8 | len_bytes[1];
    char marker_name[8];
    std::snprintf(marker_name, sizeof(marker_name), "0xFF%02X", marker);
    const std::string where =
        name + ": JPEG segment " + marker_name + " at byte " + std::to_string(pos - 2);
    if (length < 2 || uint64_t(length) > source.size() - pos) {
      return Status::Corrupt(where + ": length " + std::to_string(length) +
                             " runs past the end of the file (" + std::to_string(source.size()) +
                             " bytes)");
    }
    if (marker == 0xDA) break;  // SOS: entropy-coded data follows; libjpeg reads it in Read
    SCISEARCH_ASSIGN_OR_RETURN(std::vector<uint8_t> data, source.ReadBytes(pos + 2, length - 2));
    pos += length;
    const bool is_sof =
        marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
    if (is_sof) {
      if (have_sof) return Status::Corrupt(where + ": second frame header (SOF)");
      have_sof = true;
      if (data.size() < 6) return Status::Corrupt(where + ": frame header is truncated");
      const int precision = data[0];
      JpegLayout& l = scan.layout;
      l.height = uint32_t(data[1]) << 8 | data[2];
      l.width = uint32_t(data[3]) << 8 | data[4];
      l.components = data[5];
      const char* process = marker == 0xC0   ? "baseline"
                            : marker == 0xC1 ? "extended sequential"
                            : marker == 0xC2 ? "progressive"
                            : marker == 0xC3 ? "lossless"
                                             : "other";
      m["SOF"] = {{"marker", marker_name}, {"process", process}, {"precision", precision},
                  {"height", l.height},    {"width", l.width},   {"components", l.components}};
      if (l.width == 0 || l.height == 0) {
        return Status::Unsupported(where + ": image size " + std::to_string(l.width) + " x " +
                                   std::to_string(l.height) +
                                   " (zero height needs DNL) is not read");
      }
      if (precision != 8) {
        return Status::Unsupported(where + ": " + std::to_string(precision) +
                                   "-bit JPEG samples are not read (8-bit only)");
      }
      if (marker == 0xC3 || marker >= 0xC5) {
        return Status::Unsupported(where + ": JPEG process " + marker_name + " is not read");
      }
      if (l.components == 1) {
        l.dtype = DType::kUInt8;
      } else if (l.components == 3) {
        l.dtype = DType::kRGB8;
      } else {
        return Status::Unsupported(where + ": JPEG with " + std::to_string(l.components) +
                                   " components (CMYK/YCCK) is not read");
      }
    } else if (marker == 0xE0 && data.size() >= 14 && std::memcmp(data.data(), "JFIF\0", 5) == 0) {
      const int units = data[7];
      m["JFIF"] = {{"version", std::to_string(data[5]) + "." + (data[6] < 10 ? "0" : "") +
                                   std::to_string(data[6])},
                   {"density_units", units == 1   ? "dots per inch"
                                     : units == 2 ? "dots per cm"
                                                  : "none (aspect ratio)"},
                   {"x_density", uint32_t(data[8]) << 8 | data[9]},
                   {"y_density", uint32_t(data[10]) << 8 | data[11]}};
    } else if (marker == 0xE1 && data.size() >= 6 && std::memcmp(data.data(), "Exif\0", 5) == 0) {
      // A damaged EXIF block is reported, not fatal: the image itself may be fine.
      auto exif = ParseExif(data.data() + 6, data.size() - 6, where);
      if (exif.ok()) {
        m["EXIF"] = std::move(exif).value();
      } else {
        m["EXIF_error"] = exif.status().message();
      }
    } else if (marker == 0xFE) {
      comments.push_back(EscapeNonPrintableAscii(
          std::string_view(reinterpret_cast<const char*>(data.data()), data.size())));
    } else if (marker == 0xEE && data.size() >= 12 && std::memcmp(data.data(), "Adobe", 5) == 0) {
      m["Adobe"] = {{"transform", data[11]}};
    }
  }
  if (!have_sof) return Status::Corrupt(name + ": JPEG has no frame header (SOF) before SOS");
  if (!comments.empty()) m["comments"] = std::move(comments);
  SCISEARCH_RETURN_IF_ERROR(
      CheckDecodedSize(name, scan.layout.width, scan.layout.height, scan.layout.dtype));
  return scan;
}

// libjpeg error manager with a jump buffer; trivially destructible.
struct JpegErrorState {
  jpeg_error_mgr mgr;
  jmp_buf jump;
  char error[JMSG_LENGTH_MAX];
  bool truncated;
};

void JpegErrorExit(j_common_ptr cinfo) {
  auto* state = reinterpret_cast<JpegErrorState*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, state->error);
  std::longjmp(state->jump, 1);
}
void JpegOutputMessage(j_common_ptr) {}  // never print

// A libjpeg source reading the file through FileSource in 64 KiB blocks.
struct JpegSource {
  jpeg_source_mgr mgr;
  const FileSource* file;
  uint64_t position;
  JOCTET* buffer;
  size_t buffer_size;
  bool* truncated;
};

void JpegInitSource(j_decompress_ptr) {}
boolean JpegFill(j_decompress_ptr cinfo) {
  auto* src = reinterpret_cast<JpegSource*>(cinfo->src);
  const uint64_t size = src->file->size();
  const uint64_t n = std::min<uint64_t>(src->buffer_size, size - std::min(size, src->position));
  if (n == 0 || !src->file->ReadAt(src->position, n, src->buffer).ok()) {
    // Premature end: feed an EOI so that libjpeg stops, and remember it as an error.
    *src->truncated = true;
    src->buffer[0] = 0xFF;
    src->buffer[1] = JPEG_EOI;
    src->mgr.next_input_byte = src->buffer;
    src->mgr.bytes_in_buffer = 2;
    return TRUE;
  }
  src->position += n;
  src->mgr.next_input_byte = src->buffer;
  src->mgr.bytes_in_buffer = n;
  return TRUE;
}
void JpegSkip(j_decompress_ptr cinfo, long count) {
  auto* src = reinterpret_cast<JpegSource*>(cinfo->src);
  if (count <= 0) return;
  while (size_t(count) > src->mgr.bytes_in_buffer) {
    count -= long(src->mgr.bytes_in_buffer);
    JpegFill(cinfo);
    if (*src->truncated) return;
  }
  src->mgr.next_input_byte += count;
  src->mgr.bytes_in_buffer -= size_t(count);
}
void JpegTerm(j_decompress_ptr) {}

// Decodes rows 0..last_row, copying the selected ones to `rows_out`. Only trivially
// destructible locals: libjpeg may longjmp out of any call.
bool DecodeJpegRows(jpeg_decompress_struct* cinfo, JpegErrorState* err, const JpegLayout* layout,
                    const Hyperslab* slab, int64_t last_row, uint8_t* rows_out, uint8_t* scratch,
                    size_t row_bytes) {
  if (setjmp(err->jump)) return false;
  jpeg_read_header(cinfo, TRUE);
  cinfo->out_color_space = layout->components == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_start_decompress(cinfo);
  if (cinfo->output_width != layout->width || cinfo->output_height != layout->height ||
      size_t(cinfo->output_width) * size_t(cinfo->output_components) != row_bytes) {
    std::snprintf(err->error, sizeof(err->error), "decoded size differs from the frame header");
    return false;
  }
  for (int64_t y = 0; y <= last_row; ++y) {
    JSAMPROW row = scratch;
    if (jpeg_read_scanlines(cinfo, &row, 1) != 1) {
      std::snprintf(err->error, sizeof(err->error), "no scanline %lld", static_cast<long long>(y));
      return false;
    }
    const int64_t i = SelectedRow(*slab, y);
    if (i >= 0) std::memcpy(rows_out + uint64_t(i) * row_bytes, scratch, row_bytes);
  }
  return true;
}

// Owns a jpeg_decompress_struct (and its error manager).
struct JpegDecompressor {
  jpeg_decompress_struct cinfo{};
  JpegErrorState err{};
  JpegSource source{};
  bool created = false;
  ~JpegDecompressor() {
    if (created) jpeg_destroy_decompress(&cinfo);
  }
};

// jpeg_create_decompress may itself fail (allocation): guarded by its own setjmp.
bool CreateJpeg(JpegDecompressor* d) {
  if (setjmp(d->err.jump)) return false;
  jpeg_create_decompress(&d->cinfo);
  d->created = true;
  return true;
}

class JpegReader : public DatasetReader {
 public:
  JpegReader(FileSource source, Dataset dataset, JpegLayout layout)
      : source_(std::move(source)), dataset_(std::move(dataset)), layout_(layout) {}

  const Dataset& dataset() const override { return dataset_; }
  Dataset TakeDataset() override { return std::move(dataset_); }

  Result<NdArray> Read(size_t signal_index, const Hyperslab& slab) override {
    const std::string name = source_.path().string();
    SCISEARCH_RETURN_IF_ERROR(CheckSignalIndex(dataset_, signal_index));
    const Signal& signal = dataset_.signals[0];
    SCISEARCH_RETURN_IF_ERROR(slab.Validate(signal.shape));
    if (slab.count[0] == 0 || slab.count[1] == 0) {
      NdArray empty;
      empty.dtype = signal.dtype;
      empty.shape = slab.count;
      return empty;
    }
    const int64_t last_row = slab.start[0] + (slab.count[0] - 1) * slab.step[0];
    const size_t pixel_bytes = DTypeSize(signal.dtype);
    const size_t row_bytes = size_t(layout_.width) * pixel_bytes;
    std::vector<uint8_t> rows(uint64_t(slab.count[0]) * row_bytes);
    std::vector<uint8_t> scratch(row_bytes);
    std::vector<JOCTET> buffer(64 << 10);

    auto d = std::make_unique<JpegDecompressor>();
    bool truncated = false;
    d->cinfo.err = jpeg_std_error(&d->err.mgr);
    d->err.mgr.error_exit = JpegErrorExit;
    d->err.mgr.output_message = JpegOutputMessage;
    if (!CreateJpeg(d.get())) {
      return Status::Internal(name + ": libjpeg could not create its decoder: " + d->err.error);
    }
    d->source.mgr.init_source = JpegInitSource;
    d->source.mgr.fill_input_buffer = JpegFill;
    d->source.mgr.skip_input_data = JpegSkip;
    d->source.mgr.resync_to_restart = jpeg_resync_to_restart;
    d->source.mgr.term_source = JpegTerm;
    d->source.mgr.bytes_in_buffer = 0;
    d->source.mgr.next_input_byte = nullptr;
    d->source.file = &source_;
    d->source.position = 0;
    d->source.buffer = buffer.data();
    d->source.buffer_size = buffer.size();
    d->source.truncated = &truncated;
    d->cinfo.src = &d->source.mgr;
    if (!DecodeJpegRows(&d->cinfo, &d->err, &layout_, &slab, last_row, rows.data(), scratch.data(),
                        row_bytes)) {
      return Status::Corrupt(name + ": JPEG decoding failed: " + d->err.error);
    }
    if (truncated) {
      return Status::Corrupt(name + ": truncated: JPEG data ends before row " +
                             std::to_string(last_row) + " was decoded");
    }
    if (d->cinfo.err->num_warnings > 0) {
      // Corrupt entropy data is a warning in libjpeg; the pixels would be wrong.
      char message[JMSG_LENGTH_MAX];
      (*d->cinfo.err->format_message)(reinterpret_cast<j_common_ptr>(&d->cinfo), message);
      return Status::Corrupt(name + ": JPEG data is damaged: " + message);
    }
    return SliceColumns(rows, row_bytes, pixel_bytes, signal.dtype, slab);
  }

 private:
  FileSource source_;
  Dataset dataset_;
  JpegLayout layout_;
};

Dataset ImageDataset(const fs::path& path, const char* format, uint32_t height, uint32_t width,
                     DType dtype, Metadata metadata) {
  Dataset dataset;
  dataset.path = path;
  dataset.format = format;
  dataset.member_files = {path};
  Signal signal;
  signal.dtype = dtype;
  signal.shape = {int64_t(height), int64_t(width)};
  signal.axes = ImageAxes(height, width);
  signal.metadata = std::move(metadata);
  signal.fields.mode = Mode::kImage;
  dataset.signals.push_back(std::move(signal));
  return dataset;
}

}  // namespace

Result<std::unique_ptr<DatasetReader>> OpenPng(const fs::path& path) {
  SCISEARCH_ASSIGN_OR_RETURN(FileSource source, FileSource::Open(path));
  SCISEARCH_ASSIGN_OR_RETURN(PngScan scan, ScanPng(source));
  Dataset dataset = ImageDataset(path, "png", scan.layout.height, scan.layout.width,
                                 scan.layout.dtype, std::move(scan.metadata));
  Signal& signal = dataset.signals[0];
  if (scan.pixel_size_m) {
    const double y_ppm = signal.metadata["pHYs"]["pixels_per_unit_y"].get<double>();
    signal.axes[1].scale = *scan.pixel_size_m;
    signal.axes[1].units = NormaliseUnits("m");
    if (y_ppm > 0) {
      signal.axes[0].scale = 1.0 / y_ppm;
      signal.axes[0].units = NormaliseUnits("m");
    }
    signal.fields.pixel_size_m = *scan.pixel_size_m;
    signal.fields.pixel_size_units = "m";
  }
  // Creation time as the PNG keyword "Creation Time" states it, else the tIME chunk.
  if (auto created = FindText(signal.metadata, {"text", "Creation Time"})) {
    signal.fields.acquired = ParseDateTime(*created);
  }
  if (auto title = FindText(signal.metadata, {"text", "Title"})) signal.name = *title;
  if (!signal.fields.acquired && scan.time) signal.fields.acquired = scan.time;
  return std::unique_ptr<DatasetReader>(
      new PngReader(std::move(source), std::move(dataset), std::move(scan.layout)));
}

Result<std::unique_ptr<DatasetReader>> OpenJpeg(const fs::path& path) {
  SCISEARCH_ASSIGN_OR_RETURN(FileSource source, FileSource::Open(path));
  SCISEARCH_ASSIGN_OR_RETURN(JpegScan scan, ScanJpeg(source));
  Dataset dataset = ImageDataset(path, "jpeg", scan.layout.height, scan.layout.width,
                                 scan.layout.dtype, std::move(scan.metadata));
  Signal& signal = dataset.signals[0];
  const Metadata& meta = signal.metadata;
  const std::string make = FindText(meta, {"EXIF", "IFD0", "Make"}).value_or("");
  const std::string model = FindText(meta, {"EXIF", "IFD0", "Model"}).value_or("");
  if (!model.empty()) {
    signal.fields.instrument = make.empty() || model.starts_with(make) ? model : make + " " + model;
  } else if (!make.empty()) {
    signal.fields.instrument = make;
  }
  std::optional<std::string> when = FindText(meta, {"EXIF", "Exif", "DateTimeOriginal"});
  if (!when) when = FindText(meta, {"EXIF", "IFD0", "DateTime"});
  if (when) signal.fields.acquired = IsoFromExif(*when);
  return std::unique_ptr<DatasetReader>(
      new JpegReader(std::move(source), std::move(dataset), scan.layout));
}

}  // namespace scisearch::formats
