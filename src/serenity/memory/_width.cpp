// Compiled pathwidth decision of the width bound's minor step.
//
// A line-by-line port of ``serenity.memory.bounds._pathwidth_at_most_python`` (the
// reference): the same free placements (ascending vertex index, pass after pass), the
// same branching order (by boundary size after the step, then vertex index), the same
// dead prefixes and the same visit count, so for any graph, k and budget it returns the
// same answer and the same number of visits. Vertex sets are W 64-bit words (a template
// parameter); the Python side passes graphs of at most MAX_VERTICES vertices.
//
// Complexity: O(2^n x n^2 x W) in the worst case, cut off by max_visits.

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <stdexcept>
#include <unordered_set>
#include <utility>
#include <vector>

namespace py = pybind11;

namespace {

constexpr int kMaxWords = 4;

template <int W>
struct Set {
    std::array<uint64_t, W> w{};

    bool has(int v) const { return (w[v >> 6] >> (v & 63)) & 1; }
    void add(int v) { w[v >> 6] |= uint64_t(1) << (v & 63); }
    int count() const {
        int c = 0;
        for (int i = 0; i < W; ++i) c += __builtin_popcountll(w[i]);
        return c;
    }
    Set operator|(const Set& o) const {
        Set r;
        for (int i = 0; i < W; ++i) r.w[i] = w[i] | o.w[i];
        return r;
    }
    // |this - o|
    int count_minus(const Set& o) const {
        int c = 0;
        for (int i = 0; i < W; ++i) c += __builtin_popcountll(w[i] & ~o.w[i]);
        return c;
    }
    // |this - (a | b)|
    int count_minus(const Set& a, const Set& b) const {
        int c = 0;
        for (int i = 0; i < W; ++i) c += __builtin_popcountll(w[i] & ~(a.w[i] | b.w[i]));
        return c;
    }
    bool operator==(const Set& o) const { return w == o.w; }
};

template <int W>
struct SetHash {
    size_t operator()(const Set<W>& s) const {
        uint64_t h = 0x9E3779B97F4A7C15ULL;
        for (int i = 0; i < W; ++i) {
            h ^= s.w[i] + 0x9E3779B97F4A7C15ULL + (h << 6) + (h >> 2);
        }
        return static_cast<size_t>(h);
    }
};

struct OutOfVisits {};

template <int W>
class Pathwidth {
  public:
    Pathwidth(const std::vector<Set<W>>& nb, int k, int64_t max_visits)
        : nb_(nb), n_(static_cast<int>(nb.size())), k_(k), max_visits_(max_visits) {}

    int64_t visits = 0;

    bool search(const Set<W>& start, Set<W> reach) {
        if (dead_.count(start)) return false;
        Set<W> done = start;
        close(done, reach);
        if (n_ - done.count() <= k_) return true;
        if (!dead_.count(done)) {
            visits += 1;
            if (visits > max_visits_) throw OutOfVisits{};
            const int cost = reach.count_minus(done);
            std::vector<std::pair<int, int>> steps;
            for (int v = 0; v < n_; ++v) {
                if (done.has(v)) continue;
                const int after = cost + nb_[v].count_minus(done, reach) - (reach.has(v) ? 1 : 0);
                if (after <= k_) steps.emplace_back(after, v);
            }
            std::sort(steps.begin(), steps.end());
            for (const auto& step : steps) {
                Set<W> next = done;
                next.add(step.second);
                if (search(next, reach | nb_[step.second])) return true;
            }
            dead_.insert(done);
        }
        dead_.insert(start);
        return false;
    }

  private:
    void close(Set<W>& done, Set<W>& reach) const {
        bool moved = true;
        while (moved) {
            moved = false;
            for (int v = 0; v < n_; ++v) {
                if (done.has(v)) continue;
                if (nb_[v].count_minus(done, reach) <= (reach.has(v) ? 1 : 0)) {
                    done.add(v);
                    reach = reach | nb_[v];
                    moved = true;
                }
            }
        }
    }

    const std::vector<Set<W>>& nb_;
    int n_;
    int k_;
    int64_t max_visits_;
    std::unordered_set<Set<W>, SetHash<W>> dead_;
};

template <int W>
std::pair<int, int64_t> decide(const std::vector<std::vector<int>>& adj, int k, int64_t max_visits) {
    std::vector<Set<W>> nb(adj.size());
    for (size_t v = 0; v < adj.size(); ++v) {
        for (int w : adj[v]) nb[v].add(w);
    }
    Pathwidth<W> p(nb, k, max_visits);
    try {
        const bool fits = p.search(Set<W>{}, Set<W>{});
        return {fits ? 1 : 0, p.visits};
    } catch (const OutOfVisits&) {
        return {-1, p.visits};
    }
}

// 1 (pathwidth at most k), 0 (more), -1 (max_visits spent first), and the visits.
std::pair<int, int64_t> pathwidth_at_most(
    const std::vector<std::vector<int>>& adj, int k, int64_t max_visits) {
    const size_t n = adj.size();
    for (size_t v = 0; v < n; ++v) {
        for (int w : adj[v]) {
            if (w < 0 || static_cast<size_t>(w) >= n) throw std::invalid_argument("neighbour out of range");
        }
    }
    if (n <= 64) return decide<1>(adj, k, max_visits);
    if (n <= 128) return decide<2>(adj, k, max_visits);
    if (n <= 64 * kMaxWords) return decide<kMaxWords>(adj, k, max_visits);
    throw std::invalid_argument("too many vertices");
}

}  // namespace

PYBIND11_MODULE(_width, m) {
    m.doc() = "Compiled pathwidth decision (a port of bounds._pathwidth_at_most_python).";
    m.attr("MAX_VERTICES") = 64 * kMaxWords;
    m.def("pathwidth_at_most", &pathwidth_at_most, py::arg("adj"), py::arg("k"),
          py::arg("max_visits"), py::call_guard<py::gil_scoped_release>());
}
