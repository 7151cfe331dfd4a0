// The inverse of DatasetToJson (formats.h), for moving a Dataset between processes
// (the HDF5 worker sends the datasets it parses as JSON). Internal to the formats module.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>

#include "common/status.h"
#include "formats/formats.h"

namespace scisearch::formats {

// Rebuilds the Dataset that DatasetToJson turned into `json`, exactly (scales and
// offsets that DatasetToJson wrote as null, being NaN or infinite, come back as NaN).
// Checks every field's type; errors are kInvalidArgument naming the field.
Result<Dataset> DatasetFromJson(const nlohmann::ordered_json& json);

}  // namespace scisearch::formats
