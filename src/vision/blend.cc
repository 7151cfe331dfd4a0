// The texture head's share (blend.h). A few dozen held-out images cannot tell nearby shares
// apart: the share of their lowest log-loss moves from one draw of them to the next, and on
// uhcs3 following it cost accuracy against a fixed share. So it replaces the fixed share only
// when the held-out images show it better beyond their noise (a paired test, image by image).
#include "vision/blend.h"

#include <cmath>
#include <cstddef>

namespace scisearch::vision {

double ChooseTextureShare(const std::vector<double>& shares,
                          const std::vector<std::vector<double>>& loss, double fallback) {
  size_t base = shares.size();
  for (size_t s = 0; s < shares.size(); ++s) {
    if (shares[s] == fallback) base = s;
  }
  if (base == shares.size() || loss.size() != shares.size()) return fallback;
  const size_t n = loss[base].size();
  if (n < 2) return fallback;
  auto mean = [](const std::vector<double>& v) {
    double sum = 0;
    for (double x : v) sum += x;
    return sum / double(v.size());
  };
  size_t best = base;
  for (size_t s = 0; s < shares.size(); ++s) {
    if (loss[s].size() != n) return fallback;
    if (mean(loss[s]) < mean(loss[best])) best = s;
  }
  std::vector<double> gain(n);
  for (size_t i = 0; i < n; ++i) gain[i] = loss[base][i] - loss[best][i];
  const double mean_gain = mean(gain);
  double squares = 0;
  for (double g : gain) squares += (g - mean_gain) * (g - mean_gain);
  const double standard_error = std::sqrt(squares / double(n - 1) / double(n));
  return mean_gain > 2 * standard_error ? shares[best] : fallback;
}

}  // namespace scisearch::vision
