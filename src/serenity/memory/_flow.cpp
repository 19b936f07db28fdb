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
// one over infinite arcs on the sink side; a node in both means no finite cut. Those
// closures are kept per side node as bitsets (when they fit in ``closure_bytes``),
// so a query ORs those of its forced nodes instead of following the arcs (on ER
// N=48's fused graph a query's forcing followed some 5,900 arcs, most of them into
// the sink side). Then Dinic's algorithm (breadth-first levels, depth-first blocking
// flows) from the source-side nodes with an arc out of that side to the sink-side
// ones; the source side of the minimum cut is what the last residual search
// reaches. Only the arcs a query pushed flow on are reset after it.
//
// Measured (replaying the 232,505 queries of 15 s of the cut bound on ER N=48 seed
// 2, 5,591 arcs; 137,644 of WS N=64 seed 1, 2,906 arcs): 24.6 and 10.5 us a query
// against 40.2 and 18.1 following the arcs. Solved in groups (``solve_group``: the
// sequences ask for the cuts of every op ready at a set run at once, the same sides
// but for each op's predecessors; one flow of the shared sides, each op's grown from
// it): replaying 200,000 queries of ER N=48 seed 2 in 35,000 groups took 3.51 s
// against 5.84 one by one, WS N=64 seed 1 1.16 s against 1.89, WS N=256 seed 0
// 5.77 s against 7.87.
//
// Complexity: O(V^2 E) per query in the worst case (Dinic), O(V + E) per phase;
// the closures O(S (V + E)) time once and 2 S V bits (S side nodes).

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace py = pybind11;

namespace {

class Cuts {
  public:
    // Arcs tail -> head with capacities (those at or above ``infinite`` never cut);
    // ``source`` and ``sink`` are nodes; ``side_nodes``: the first nodes, those whose
    // side a query reports and which a query may force by bits; ``closure_bytes``:
    // what their closures may take (more: each query follows the arcs instead).
    Cuts(int nodes, const std::vector<int>& tails, const std::vector<int>& heads,
         const std::vector<int64_t>& caps, int source, int sink, int64_t infinite,
         int side_nodes, size_t closure_bytes)
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
        base_residual_ = cap_;
        side_.assign(n_, 0);
        level_.assign(n_, 0);
        next_.assign(n_, 0);
        queue_.reserve(n_);
        // Each side node's closures (and the source's and the sink's) as bitsets of
        // the nodes, when they fit in ``closure_bytes``: a query then ORs them.
        words_ = (n_ + 63) / 64;
        const size_t slots = static_cast<size_t>(side_nodes_) + 2;
        if (slots * 2 * words_ * sizeof(uint64_t) <= closure_bytes) {
            closures_.assign(slots * 2 * words_, 0);
            for (size_t i = 0; i < slots; ++i) {
                const int v = i < static_cast<size_t>(side_nodes_)
                                  ? static_cast<int>(i)
                                  : (i == slots - 2 ? source_ : sink_);
                for (int forward = 0; forward < 2; ++forward) {
                    std::fill(side_.begin(), side_.end(), 0);
                    queue_.clear();
                    side_[v] = 1;
                    queue_.push_back(v);
                    spread(forward != 0, 1);
                    uint64_t* bits = &closures_[(2 * i + forward) * words_];
                    for (int w : queue_) bits[w >> 6] |= uint64_t{1} << (w & 63);
                }
            }
            std::fill(side_.begin(), side_.end(), 0);
            in_.assign(words_, 0);
            out_.assign(words_, 0);
        }
    }

    // The least cut with ``inside`` on the source side and ``outside`` on the sink
    // side, or -1 when every such cut is infinite; with ``want_side`` also the source
    // side of a minimum cut, as little-endian bits of the first ``side_nodes`` nodes.
    py::tuple solve(const std::vector<int>& inside, const std::vector<int>& outside, bool want_side) {
        begin();
        for (int v : inside) check(v);
        for (int v : outside) check(v);
        if (closures_.empty() || !all_side(inside) || !all_side(outside)) {
            const bool ok = force(inside.begin(), inside.end(), 1, true) &&
                            force(outside.begin(), outside.end(), 2, false);
            return finish(ok, want_side);
        }
        start_closures();
        for (int v : inside) add_closure(in_, v, true);
        for (int v : outside) add_closure(out_, v, false);
        return finish(mark_closures(), want_side);
    }

    // The same with the forced nodes as little-endian bits of the first
    // ``side_nodes`` nodes (bytes beyond them must be 0).
    py::tuple solve_bits(const py::bytes& inside, const py::bytes& outside, bool want_side) {
        begin();
        if (closures_.empty()) {
            const bool ok = force_bits(inside, 1, true) && force_bits(outside, 2, false);
            return finish(ok, want_side);
        }
        start_closures();
        bits_closure(inside, in_, true);
        bits_closure(outside, out_, false);
        return finish(mark_closures(), want_side);
    }

    // The queries ``inside | extras[i]`` against ``outside`` (bits as for
    // ``solve_bits``), one answer each: the maximum flow with ``inside`` alone is
    // found once, and each query's flow grown from it (a flow of the smaller
    // query is one of each larger: forcing more nodes to the source side keeps its
    // arcs' capacities and the balance at every node still free). The minimum cut's
    // value and least source side do not depend on the flow it is found from. And
    // the least source side R of the smaller query lies within each larger one's,
    // B (the cut function c is submodular: c(R & B) + c(R | B) <= c(R) + c(B), where
    // R & B is a cut of the smaller query, so c(R & B) >= c(R), and R | B one of the
    // larger, so c(R | B) >= c(B): both are equalities, R & B is a minimum cut of the
    // smaller query, and R, the least, lies within it). So R joins the source side:
    // no residual arc leaves it (arcs out of it are full, arcs into it empty), and a
    // query searches only from the nodes it forces beyond R.
    py::list solve_group(const py::bytes& inside, const py::bytes& outside,
                         const std::vector<py::bytes>& extras, bool want_side) {
        py::list answers;
        if (closures_.empty()) {  // no closures kept: each query from the empty flow
            std::string both;
            for (const py::bytes& extra : extras) {
                const std::string_view a = inside, b = extra;
                both.assign(std::max(a.size(), b.size()), '\0');
                for (size_t i = 0; i < a.size(); ++i) both[i] = a[i];
                for (size_t i = 0; i < b.size(); ++i) both[i] = static_cast<char>(both[i] | b[i]);
                answers.append(solve_bits(py::bytes(both), outside, want_side));
            }
            return answers;
        }
        begin();
        start_closures();
        bits_closure(inside, in_, true);
        bits_closure(outside, out_, false);
        const int64_t base = mark_closures() ? dinic(0) : -1;
        if (base < 0) {  // every larger query has no finite cut either
            reset_to(cap_);
            for (size_t i = 0; i < extras.size(); ++i) answers.append(py::make_tuple(-1, py::bytes()));
            return answers;
        }
        base_touched_.swap(touched_);
        for (int a : base_touched_) {
            base_residual_[a] = residual_[a];
            base_residual_[mate_[a]] = residual_[mate_[a]];
        }
        // The least source side of the smaller query: what the last search reached.
        source_nodes_.clear();
        for (int v = 0; v < n_; ++v)
            if (level_[v] >= 0) {
                side_[v] = 1;
                source_nodes_.push_back(v);
                in_[v >> 6] |= uint64_t{1} << (v & 63);
            }
        base_in_ = in_;
        const size_t sources = source_nodes_.size();
        for (const py::bytes& extra : extras) {
            bits_closure(extra, in_, true);
            bool forced = true;
            for (size_t i = 0; i < words_ && forced; ++i) forced = !(in_[i] & out_[i]);
            int64_t flow = -1;
            if (forced) {
                for (size_t i = 0; i < words_; ++i)
                    for (uint64_t w = in_[i] & ~base_in_[i]; w; w &= w - 1) {
                        const int v = static_cast<int>(64 * i) + __builtin_ctzll(w);
                        side_[v] = 1;
                        source_nodes_.push_back(v);
                    }
                flow = dinic(base, sources);
            }
            answers.append(answer(flow, want_side));
            reset_to(base_residual_);
            for (size_t q = sources; q < source_nodes_.size(); ++q) side_[source_nodes_[q]] = 0;
            source_nodes_.resize(sources);
            in_ = base_in_;
        }
        touched_.swap(base_touched_);
        for (int a : touched_) {
            base_residual_[a] = cap_[a];
            base_residual_[mate_[a]] = cap_[mate_[a]];
        }
        reset_to(cap_);
        return answers;
    }

  private:
    void check(int v) const {
        if (v < 0 || v >= n_) throw std::invalid_argument("forced node out of range");
    }

    bool all_side(const std::vector<int>& nodes) const {
        for (int v : nodes)
            if (v >= side_nodes_ && v != source_ && v != sink_) return false;
        return true;
    }

    void start_closures() {
        std::fill(in_.begin(), in_.end(), 0);
        std::fill(out_.begin(), out_.end(), 0);
        add_closure(in_, source_, true);
        add_closure(out_, sink_, false);
    }

    // Calls ``visit`` on each side node whose bit is set in ``bits`` (little-endian).
    template <class Visit>
    void each_bit(const py::bytes& bits, Visit visit) const {
        const std::string_view b = bits;
        if (b.size() > static_cast<size_t>((side_nodes_ + 7) / 8))
            throw std::invalid_argument("forced bits beyond the side nodes");
        for (size_t i = 0; i < b.size(); ++i)
            for (unsigned byte = static_cast<unsigned char>(b[i]); byte; byte &= byte - 1) {
                const int v = static_cast<int>(8 * i) + __builtin_ctz(byte);
                if (v >= side_nodes_) throw std::invalid_argument("forced bits beyond the side nodes");
                visit(v);
            }
    }

    void bits_closure(const py::bytes& bits, std::vector<uint64_t>& into, bool forward) {
        each_bit(bits, [&](int v) { add_closure(into, v, forward); });
    }

    void begin() {
        std::fill(side_.begin(), side_.end(), 0);
        source_nodes_.clear();
    }

    // The answer of a query whose sides are marked (``forced``: not contradictory):
    // its maximum flow from the empty one, then the residual arcs reset.
    py::tuple finish(bool forced, bool want_side) {
        const int64_t flow = forced ? dinic(0) : -1;
        reset_to(cap_);
        return answer(flow, want_side);
    }

    // (the cut, its source side's bits) or (-1, b"") after ``dinic``.
    py::tuple answer(int64_t flow, bool want_side) const {
        if (flow < 0) return py::make_tuple(-1, py::bytes());
        if (!want_side) return py::make_tuple(flow, py::bytes());
        // levels() left level_ >= 0 exactly on the nodes the residual graph reaches.
        std::string bits((side_nodes_ + 7) / 8, '\0');
        for (int v = 0; v < side_nodes_; ++v)
            if (level_[v] >= 0) bits[v >> 3] = static_cast<char>(bits[v >> 3] | (1 << (v & 7)));
        return py::make_tuple(flow, py::bytes(bits));
    }

    // Dinic's algorithm from the residual graph as it stands (carrying a flow of
    // ``flow`` into the sink side), from the source-side nodes with a residual arc out
    // of that side (the others never carry flow out of it; those before ``first`` in
    // ``source_nodes_`` have none): the maximum flow, or -1 when it is infinite.
    int64_t dinic(int64_t flow, size_t first = 0) {
        frontier_.clear();
        for (size_t q = first; q < source_nodes_.size(); ++q)
            for (int v = source_nodes_[q], a = start_[v]; a < start_[v + 1]; ++a)
                if (residual_[a] > 0 && side_[head_[a]] != 1) {
                    frontier_.push_back(v);
                    break;
                }
        while (levels()) {
            for (int v : queue_) next_[v] = start_[v];  // the nodes the levels reached
            for (int v : frontier_) {
                while (true) {
                    const int64_t pushed = push(v, infinite_);
                    if (pushed == 0) break;
                    flow += pushed;
                    if (flow >= infinite_) return -1;
                }
            }
        }
        return flow;
    }

    // The residual arcs pushed on since the last reset back to ``values``.
    void reset_to(const std::vector<int64_t>& values) {
        for (int a : touched_) {
            residual_[a] = values[a];
            residual_[mate_[a]] = values[mate_[a]];
        }
        touched_.clear();
    }

    bool force_bits(const py::bytes& bits, char mark, bool forward) {
        marked_.clear();
        each_bit(bits, [&](int v) { marked_.push_back(v); });
        return force(marked_.begin(), marked_.end(), mark, forward);
    }

    // Marks ``mark`` on the nodes given and on those their infinite arcs force
    // (forward from the source side, backward into the sink side); false when a node
    // would be on both sides. The source side's nodes are kept in ``source_nodes_``.
    template <class It>
    bool force(It first, It last, char mark, bool forward) {
        queue_.clear();
        auto visit = [&](int v) {
            if (side_[v] == mark) return true;
            if (side_[v] != 0) return false;
            side_[v] = mark;
            queue_.push_back(v);
            return true;
        };
        if (!visit(forward ? source_ : sink_)) return false;
        for (It it = first; it != last; ++it)
            if (!visit(*it)) return false;
        if (!spread(forward, mark)) return false;
        if (forward) source_nodes_ = queue_;
        return true;
    }

    // Marks ``mark`` on every node the infinite arcs force along with those in
    // ``queue_`` (already marked), appending them; false at a node marked otherwise.
    bool spread(bool forward, char mark) {
        for (size_t q = 0; q < queue_.size(); ++q) {
            const int v = queue_[q];
            for (int a = start_[v]; a < start_[v + 1]; ++a) {
                // Forward: v's infinite arcs. Backward: infinite arcs into v (the mate of
                // a residual arc out of v).
                const int64_t c = forward ? cap_[a] : cap_[mate_[a]];
                if (c < infinite_) continue;
                const int w = head_[a];
                if (side_[w] == mark) continue;
                if (side_[w] != 0) return false;
                side_[w] = mark;
                queue_.push_back(w);
            }
        }
        return true;
    }

    // The sides from the closures: ``in_`` and ``out_`` hold the nodes forced to
    // either side; false when they meet.
    bool mark_closures() {
        for (size_t i = 0; i < words_; ++i)
            if (in_[i] & out_[i]) return false;
        for (size_t i = 0; i < words_; ++i) {
            for (uint64_t w = in_[i]; w; w &= w - 1) {
                const int v = static_cast<int>(64 * i) + __builtin_ctzll(w);
                side_[v] = 1;
                source_nodes_.push_back(v);
            }
            for (uint64_t w = out_[i]; w; w &= w - 1) side_[64 * i + __builtin_ctzll(w)] = 2;
        }
        return true;
    }

    // ORs into ``into`` the closure of side node or source/sink ``v`` (``forward``).
    void add_closure(std::vector<uint64_t>& into, int v, bool forward) {
        const size_t slot = v == source_   ? side_nodes_
                            : v == sink_   ? side_nodes_ + 1
                                           : static_cast<size_t>(v);
        const uint64_t* bits = &closures_[(2 * slot + (forward ? 1 : 0)) * words_];
        for (size_t i = 0; i < words_; ++i) into[i] |= bits[i];
    }

    // Breadth-first levels from every source-side node over residual arcs; whether a
    // sink-side node is reached.
    bool levels() {
        std::fill(level_.begin(), level_.end(), -1);
        queue_.clear();
        for (int v : source_nodes_) level_[v] = 0;  // never entered
        for (int v : frontier_) queue_.push_back(v);
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
                touched_.push_back(a);
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
    std::vector<int> source_nodes_, frontier_, marked_, touched_;  // per query
    std::vector<int> base_touched_;  // per group: the arcs its first flow took
    size_t words_ = 0;
    std::vector<uint64_t> closures_, in_, out_, base_in_;
    std::vector<int64_t> cap_, residual_, base_residual_;  // base: a group's first flow
    std::vector<char> side_;
};

}  // namespace

PYBIND11_MODULE(_flow, m) {
    m.doc() = "Compiled minimum cuts of the cut bound (serenity.memory.cuts).";
    py::class_<Cuts>(m, "Cuts")
        .def(py::init<int, const std::vector<int>&, const std::vector<int>&,
                      const std::vector<int64_t>&, int, int, int64_t, int, size_t>(),
             py::arg("nodes"), py::arg("tails"), py::arg("heads"), py::arg("caps"),
             py::arg("source"), py::arg("sink"), py::arg("infinite"), py::arg("side_nodes"),
             py::arg("closure_bytes"))
        .def("solve", &Cuts::solve, py::arg("inside"), py::arg("outside"), py::arg("want_side"))
        .def("solve_bits", &Cuts::solve_bits, py::arg("inside"), py::arg("outside"),
             py::arg("want_side"))
        .def("solve_group", &Cuts::solve_group, py::arg("inside"), py::arg("outside"),
             py::arg("extras"), py::arg("want_side"));
}
