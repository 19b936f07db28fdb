// Compiled minimum cuts of the cut bound (``serenity.memory.cuts.StepCuts``).
//
// One graph, built once; each query forces some nodes to the source side and some
// to the sink side and asks for a minimum cut between them. The reference is
// OR-Tools' push-relabel on the same graph with infinite forcing arcs (the Python
// path of ``StepCuts.solve``); the tests compare the two cut for cut. What this
// adds: the graph and its reverse arcs are kept across queries (OR-Tools' simple
// interface rebuilds them on every solve, about a third of a query on the fused
// RandWire graphs), and the nodes an infinite arc forces along with the forced ones
// are merged into the source or sink before the search, so a query spends its time
// only on the nodes still free.
//
// A query: the nodes reachable from the source-forced ones over infinite arcs must
// be on the source side (else an infinite arc is cut), those reaching a sink-forced
// one over infinite arcs on the sink side; a node in both means no finite cut. Then
// Dinic's algorithm (breadth-first levels, depth-first blocking flows) from all the
// source-side nodes to all the sink-side ones; the source side of the minimum cut
// is what the last residual search reaches.
//
// Complexity: O(V^2 E) per query in the worst case (Dinic), O(V + E) per phase.

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace py = pybind11;

namespace {

class Cuts {
  public:
    // Arcs tail -> head with capacities (those at or above ``infinite`` never cut);
    // ``source`` and ``sink`` are nodes; ``side_nodes``: the first nodes, those whose
    // side a query reports.
    Cuts(int nodes, const std::vector<int>& tails, const std::vector<int>& heads,
         const std::vector<int64_t>& caps, int source, int sink, int64_t infinite,
         int side_nodes)
        : n_(nodes), source_(source), sink_(sink), infinite_(infinite), side_nodes_(side_nodes) {
        const size_t m = tails.size();
        if (heads.size() != m || caps.size() != m) throw std::invalid_argument("arc arrays differ in length");
        if (source < 0 || source >= nodes || sink < 0 || sink >= nodes || source == sink)
            throw std::invalid_argument("bad source or sink");
        if (side_nodes < 0 || side_nodes > nodes) throw std::invalid_argument("bad side_nodes");
        std::vector<int> degree(n_ + 1, 0);
        for (size_t a = 0; a < m; ++a) {
            if (tails[a] < 0 || tails[a] >= n_ || heads[a] < 0 || heads[a] >= n_)
                throw std::invalid_argument("arc node out of range");
            if (caps[a] < 0) throw std::invalid_argument("negative capacity");
            ++degree[tails[a] + 1];
            ++degree[heads[a] + 1];
        }
        for (int v = 0; v < n_; ++v) degree[v + 1] += degree[v];
        start_ = degree;
        head_.assign(2 * m, 0);
        cap_.assign(2 * m, 0);
        mate_.assign(2 * m, 0);
        std::vector<int> fill(start_.begin(), start_.end() - 1);
        for (size_t a = 0; a < m; ++a) {
            const int f = fill[tails[a]]++, b = fill[heads[a]]++;
            head_[f] = heads[a];
            cap_[f] = caps[a];
            mate_[f] = b;
            head_[b] = tails[a];
            cap_[b] = 0;  // the residual arc
            mate_[b] = f;
        }
        residual_ = cap_;
        side_.assign(n_, 0);
        level_.assign(n_, 0);
        next_.assign(n_, 0);
        queue_.reserve(n_);
    }

    // The least cut with ``inside`` on the source side and ``outside`` on the sink
    // side, or -1 when every such cut is infinite; with ``want_side`` also the source
    // side of a minimum cut, as little-endian bits of the first ``side_nodes`` nodes.
    py::tuple solve(const std::vector<int>& inside, const std::vector<int>& outside, bool want_side) {
        std::copy(cap_.begin(), cap_.end(), residual_.begin());
        std::fill(side_.begin(), side_.end(), 0);
        // side_: 1 source side, 2 sink side (forced), 0 free.
        if (!force(inside, 1, true) || !force(outside, 2, false)) return py::make_tuple(-1, py::bytes());
        int64_t flow = 0;
        while (levels()) {
            std::copy(start_.begin(), start_.end() - 1, next_.begin());
            for (int v = 0; v < n_; ++v) {
                if (side_[v] != 1) continue;
                next_[v] = start_[v];
                while (true) {
                    const int64_t pushed = push(v, infinite_);
                    if (pushed == 0) break;
                    flow += pushed;
                    if (flow >= infinite_) return py::make_tuple(-1, py::bytes());
                }
            }
        }
        if (!want_side) return py::make_tuple(flow, py::bytes());
        // levels() left level_ >= 0 exactly on the nodes the residual graph reaches.
        std::string bits((side_nodes_ + 7) / 8, '\0');
        for (int v = 0; v < side_nodes_; ++v)
            if (level_[v] >= 0) bits[v >> 3] = static_cast<char>(bits[v >> 3] | (1 << (v & 7)));
        return py::make_tuple(flow, py::bytes(bits));
    }

  private:
    // Marks ``mark`` on the nodes given and on those their infinite arcs force
    // (forward from the source side, backward into the sink side); false when a node
    // would be on both sides.
    bool force(const std::vector<int>& nodes, char mark, bool forward) {
        queue_.clear();
        auto visit = [&](int v) {
            if (side_[v] == mark) return true;
            if (side_[v] != 0) return false;
            side_[v] = mark;
            queue_.push_back(v);
            return true;
        };
        if (!visit(forward ? source_ : sink_)) return false;
        for (int v : nodes) {
            if (v < 0 || v >= n_) throw std::invalid_argument("forced node out of range");
            if (!visit(v)) return false;
        }
        for (size_t q = 0; q < queue_.size(); ++q) {
            const int v = queue_[q];
            for (int a = start_[v]; a < start_[v + 1]; ++a) {
                // Forward: v's infinite arcs. Backward: infinite arcs into v (the mate of
                // a residual arc out of v).
                const int64_t c = forward ? cap_[a] : cap_[mate_[a]];
                if (c >= infinite_ && !visit(head_[a])) return false;
            }
        }
        return true;
    }

    // Breadth-first levels from every source-side node over residual arcs; whether a
    // sink-side node is reached.
    bool levels() {
        std::fill(level_.begin(), level_.end(), -1);
        queue_.clear();
        for (int v = 0; v < n_; ++v)
            if (side_[v] == 1) {
                level_[v] = 0;
                queue_.push_back(v);
            }
        bool reached = false;
        for (size_t q = 0; q < queue_.size(); ++q) {
            const int v = queue_[q];
            for (int a = start_[v]; a < start_[v + 1]; ++a) {
                const int w = head_[a];
                if (residual_[a] > 0 && level_[w] < 0) {
                    level_[w] = level_[v] + 1;
                    if (side_[w] == 2) {
                        reached = true;  // a sink-side node ends a path: not expanded
                    } else {
                        queue_.push_back(w);
                    }
                }
            }
        }
        return reached;
    }

    // One augmenting path of the level graph from v, at most ``limit``; 0 when none.
    int64_t push(int v, int64_t limit) {
        if (side_[v] == 2) return limit;
        for (int& a = next_[v]; a < start_[v + 1]; ++a) {
            const int w = head_[a];
            if (residual_[a] <= 0 || level_[w] != level_[v] + 1) continue;
            const int64_t pushed = push(w, std::min(limit, residual_[a]));
            if (pushed > 0) {
                residual_[a] -= pushed;
                residual_[mate_[a]] += pushed;
                return pushed;
            }
        }
        return 0;
    }

    int n_, source_, sink_;
    int64_t infinite_;
    int side_nodes_;
    std::vector<int> start_, head_, mate_, level_, next_, queue_;
    std::vector<int64_t> cap_, residual_;
    std::vector<char> side_;
};

}  // namespace

PYBIND11_MODULE(_flow, m) {
    m.doc() = "Compiled minimum cuts of the cut bound (serenity.memory.cuts).";
    py::class_<Cuts>(m, "Cuts")
        .def(py::init<int, const std::vector<int>&, const std::vector<int>&,
                      const std::vector<int64_t>&, int, int, int64_t, int>(),
             py::arg("nodes"), py::arg("tails"), py::arg("heads"), py::arg("caps"),
             py::arg("source"), py::arg("sink"), py::arg("infinite"), py::arg("side_nodes"))
        .def("solve", &Cuts::solve, py::arg("inside"), py::arg("outside"), py::arg("want_side"));
}
