#include "tagger/metrics.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

namespace moeforge::tagger {

EvalReport Evaluate(const TagSchema& schema, const std::vector<std::vector<float>>& scores,
                    const std::vector<std::vector<float>>& truth, const std::vector<float>& thresholds,
                    bool known_binary) {
  EvalReport r;
  int col = 0;
  for (const auto& g : schema.groups()) {
    int n = static_cast<int>(g.tags.size());
    if (g.exclusive) {
      GroupScore gs;
      gs.group = g.name;
      gs.confusion.assign(static_cast<size_t>(n), std::vector<int>(static_cast<size_t>(n), 0));
      for (size_t i = 0; i < scores.size(); ++i) {
        int t = -1, positives = 0;
        for (int k = 0; k < n; ++k)
          if (truth[i][static_cast<size_t>(col + k)] > 0.5f) t = k, ++positives;
        if (positives != 1) continue;
        int p = 0;
        for (int k = 1; k < n; ++k)
          if (scores[i][static_cast<size_t>(col + k)] > scores[i][static_cast<size_t>(col + p)]) p = k;
        ++gs.n;
        gs.correct += (p == t);
        ++gs.confusion[static_cast<size_t>(t)][static_cast<size_t>(p)];
      }
      r.groups.push_back(gs);
    } else if (known_binary) {
      for (int k = 0; k < n; ++k) {
        size_t c = static_cast<size_t>(col + k);
        TagScore ts;
        ts.tag = g.tags[static_cast<size_t>(k)];
        float th = c < thresholds.size() ? thresholds[c] : 0.5f;
        for (size_t i = 0; i < scores.size(); ++i) {
          bool p = scores[i][c] >= th, t = truth[i][c] > 0.5f;
          if (p && t) ++ts.tp;
          else if (p) ++ts.fp;
          else if (t) ++ts.fn;
          else ++ts.tn;
        }
        r.tags.push_back(ts);
      }
    }
    col += n;
  }
  return r;
}

std::vector<float> CalibrateThresholds(const TagSchema& schema, const std::vector<std::vector<float>>& scores,
                                       const std::vector<std::vector<float>>& truth) {
  std::vector<float> th(static_cast<size_t>(schema.size()), 0.5f);
  int col = 0;
  for (const auto& g : schema.groups()) {
    int n = static_cast<int>(g.tags.size());
    if (!g.exclusive) {
      for (int k = 0; k < n; ++k) {
        size_t c = static_cast<size_t>(col + k);
        std::vector<std::pair<float, bool>> v;
        int pos = 0;
        for (size_t i = 0; i < scores.size(); ++i) {
          v.emplace_back(scores[i][c], truth[i][c] > 0.5f);
          pos += truth[i][c] > 0.5f;
        }
        if (pos == 0 || pos == static_cast<int>(v.size())) continue;
        // Sweep thresholds between consecutive distinct scores, high to low.
        std::sort(v.begin(), v.end(), [](auto& a, auto& b) { return a.first > b.first; });
        int tp = 0, fp = 0;
        double best = -1;
        float best_th = 0.5f;
        for (size_t i = 0; i < v.size(); ++i) {
          (v[i].second ? tp : fp)++;
          if (i + 1 < v.size() && v[i + 1].first == v[i].first) continue;
          double f1 = 2.0 * tp / (2.0 * tp + fp + (pos - tp));
          if (f1 > best) {
            best = f1;
            best_th = i + 1 < v.size() ? 0.5f * (v[i].first + v[i + 1].first) : v[i].first;
          }
        }
        th[c] = best_th;
      }
    }
    col += n;
  }
  return th;
}

nlohmann::json EvalReport::ToJson() const {
  nlohmann::json j;
  for (const auto& g : groups)
    j["accuracy"][g.group] = {{"n", g.n}, {"correct", g.correct}, {"accuracy", g.accuracy()}};
  for (const auto& t : tags)
    j["f1"][t.tag] = {{"f1", t.f1()}, {"tp", t.tp}, {"fp", t.fp}, {"fn", t.fn}, {"tn", t.tn}};
  return j;
}

std::string EvalReport::ToText(const TagSchema& schema) const {
  std::ostringstream o;
  char buf[256];
  for (const auto& g : groups) {
    std::snprintf(buf, sizeof buf, "%s accuracy: %.2f%% (%d/%d)\n", g.group.c_str(), 100 * g.accuracy(), g.correct, g.n);
    o << buf;
  }
  for (const auto& t : tags) {
    std::snprintf(buf, sizeof buf, "  F1 %-12s %.3f (tp %d fp %d fn %d)\n", t.tag.c_str(), t.f1(), t.tp, t.fp, t.fn);
    o << buf;
  }
  for (const auto& g : groups) {
    const TagGroup* tg = nullptr;
    for (const auto& x : schema.groups())
      if (x.name == g.group) tg = &x;
    if (!tg) continue;
    o << "confusion " << g.group << " (rows truth, columns predicted):\n";
    std::snprintf(buf, sizeof buf, "%14s", "");
    o << buf;
    for (const auto& t : tg->tags) {
      std::snprintf(buf, sizeof buf, " %6.6s", t.c_str());
      o << buf;
    }
    o << "\n";
    for (size_t r = 0; r < g.confusion.size(); ++r) {
      int row = 0;
      for (int v : g.confusion[r]) row += v;
      if (row == 0) continue;
      std::snprintf(buf, sizeof buf, "%14.14s", tg->tags[r].c_str());
      o << buf;
      for (int v : g.confusion[r]) {
        std::snprintf(buf, sizeof buf, " %6d", v);
        o << buf;
      }
      o << "\n";
    }
  }
  return o.str();
}

}  // namespace moeforge::tagger
