#include <nlohmann/json.hpp>

#include "search/search.h"

namespace scisearch::search {

std::string ResultsToJson(const Results& results) {
  using nlohmann::ordered_json;
  ordered_json facets = ordered_json::object();
  for (const Facet& facet : results.facets) {
    ordered_json values = ordered_json::array();
    for (const FacetValue& v : facet.values)
      values.push_back({{"value", v.value}, {"count", v.count}});
    facets[facet.name] = std::move(values);
  }
  ordered_json hits = ordered_json::array();
  for (const Hit& hit : results.hits) {
    ordered_json matched = ordered_json::array();
    for (const MatchReason& m : hit.matched)
      matched.push_back({{"field", m.field}, {"value", m.value}});
    ordered_json h = {{"id", hit.id},       {"kind", hit.kind},       {"rank", hit.rank},
                      {"score", hit.score}, {"title", hit.title},     {"path", hit.path},
                      {"date", hit.date},   {"summary", hit.summary}, {"snippet", hit.snippet},
                      {"matched", matched}, {"tags", hit.tags}};
    if (hit.dataset_id > 0) {
      h["thumbnail"] = "/api/datasets/" + std::to_string(hit.dataset_id) + "/thumbnail";
    }
    hits.push_back(std::move(h));
  }
  ordered_json j = {{"query", results.query},
                    {"corrected", results.corrected},
                    {"total", results.total},
                    {"total_exact", results.total_exact},
                    {"seconds", results.seconds},
                    {"facets_approximate", results.facets_approximate},
                    {"ranked_recent", results.ranked_recent},
                    {"facets", facets},
                    {"hits", hits}};
  return j.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
}

}  // namespace scisearch::search
