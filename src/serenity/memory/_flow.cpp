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
// The sequences of the cut bound (``Sequences``, below; ``cuts._Sequences`` is the
// reference) ask for their groups here without the interpreter between them, and
// each group's first flow starts from the flow of the nearest set run before it on
// the search's path (``Flow``, kept per depth): that set's source side lies within
// this one's, its sink side holds this one's but for the op run since and what only
// it forced; those nodes give their inflow back to the source side (a node of a
// preflow with excess has a residual path to the source side, and the flow into
// them came from there without crossing the sink side), then Dinic's algorithm goes
// on. The refined line's cuts between two sets run (``solve_between``: the op forced
// out, its predecessors in) grow each from the flow of the two sets alone, with that
// flow's least source side joining the source where it holds no node now forced out.
// Measured on ER N=64 seed 0 (8 s's worth of both lines of the cut bound): the first
// flows of 52,104 groups took 2.5 s instead of 6.2 from the empty flow; the cuts
// between sets, 16,600 of them, 2.4 s instead of 3.4 one at a time. The line built
// from the last op back (``reverse``) goes the other way: the set placed before on
// its path has a sink side within this one's, and the nodes that left its source
// side owe the flow they sent out; one now on the sink side only lowers the value,
// a free one takes it back over a residual path from either side (from the sink
// side, the value falls by as much). On ER N=64 seed 2 (the cut bound alone, its
// first 600,000 max-flows) the groups' first flows scanned 221M arcs instead of
// 732M, and it reached 42 units (of 77,824 bytes) in 7.6-7.7 s instead of 8.7-9.0.
//
// The sequences prune an op whose cut is past the level they search, and most cuts
// asked are (71% of the first million on ER N=64 seed 2, the cut bound alone): its
// max-flow stops at the end of the phase that takes its flow past the level, and
// the value reached is a lower bound (``Sequences``, ``stop_past_level``); of
// 691,371 lower bounds, 1,249 were solved again at a higher level. Stopping at the
// push that passes the level saves more (a quarter of the arcs scanned came after
// it) but keeps lower bounds closer to the level, so a search that fails lifts its
// level less: the cut bound alone at 50 s, heuristic guide, reached (units of
// 77,824 bytes) on WS N=352 98 at the phase's end, 94 at the push, 96 solving each
// max-flow to the end; WS N=256 76, 75 and 75; ER N=64 seed 2 44 in 43.2 s, 44 in
// 41.7 s, and 43 (44 takes it 3.5M max-flows, 74 s before this session).
//
// Each phase's levels go on past the first sink-side node reached, and the blocking
// flow takes paths to sink-side nodes of any level: stopping the levels there (as the
// textbook does for one sink) made more phases, 8 s's worth of both lines took 107.8 s
// instead of 72.6 on WS N=352 seed 0 and 42.3 instead of 37.0 on WS N=256 (by hand).
// There a phase's search meets 900-1,500 nodes (50-150 on WS N=64 and ER N=48): the
// free nodes of a query on those graphs are a large part of the graph, and the last
// phase (no path left) is only 17-23% of the arcs the levels scan. Up to four
// depth-first augmenting paths before the phases (no levels) wander through them:
// 4 s's worth took 44.6 s instead of 18.7 on WS N=256, 6.9 instead of 4.3 on ER N=48.
//
// The graph may give an arc with its reverse (``StepCuts``' lean graph: a tensor one
// op reads is an arc to it, beside that op's infinite arc back to the producer):
// the two are one pair of residual arcs, each with its own capacity, so a search
// scans each once. ``work()`` counts the arcs the searches scanned, by which
// ``StepCuts`` chooses between its two graphs (cuts.py, "One reader").
//
// Complexity: O(V^2 E) per query in the worst case (Dinic), O(V + E) per phase;
// the closures O(S (V + E)) time once and 2 S V bits (S side nodes).

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace py = pybind11;

namespace {

using Words = std::vector<uint64_t>;

// A query's answer: its cut (-1: none finite) and the least source side's side nodes.
struct Answer {
    int64_t cut;
    Words side;
    bool exact = true;  // false: the max-flow stopped past its limit, ``cut`` a lower bound
};

// A maximum flow kept to start a larger query's from: the residuals of the arcs it
// pushed on, the nodes of its source and sink sides (bits of all nodes) and its value.
struct Flow {
    std::vector<std::pair<int, int64_t>> arcs;
    Words source, sink;
    int64_t value = 0;
    bool valid = false;
};

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
        // An arc given with its reverse (an op's input read by one op: the tensor's
        // arc to it, and its infinite arc back to its producer) is one pair of
        // residual arcs, each with its capacity: fewer arcs for every search to scan.
        std::vector<int64_t> back(m, 0);  // per arc kept: its reverse's capacity
        std::vector<char> merged(m, 0);   // an arc that is another's reverse
        std::unordered_map<uint64_t, size_t> alone;  // (tail, head) -> an arc not paired yet
        const auto key = [](int tail, int head) {
            return static_cast<uint64_t>(static_cast<uint32_t>(tail)) << 32 | static_cast<uint32_t>(head);
        };
        for (size_t a = 0; a < m; ++a) {
            if (tails[a] < 0 || tails[a] >= n_ || heads[a] < 0 || heads[a] >= n_)
                throw std::invalid_argument("arc node out of range");
            if (caps[a] < 0) throw std::invalid_argument("negative capacity");
            const auto found = alone.find(key(heads[a], tails[a]));
            if (found != alone.end()) {
                back[found->second] = caps[a];
                merged[a] = 1;
                alone.erase(found);
            } else {
                alone.emplace(key(tails[a], heads[a]), a);
            }
        }
        std::vector<int> degree(n_ + 1, 0);
        size_t kept = 0;
        for (size_t a = 0; a < m; ++a)
            if (!merged[a]) {
                ++degree[tails[a] + 1];
                ++degree[heads[a] + 1];
                ++kept;
            }
        for (int v = 0; v < n_; ++v) degree[v + 1] += degree[v];
        start_ = degree;
        head_.assign(2 * kept, 0);
        cap_.assign(2 * kept, 0);
        mate_.assign(2 * kept, 0);
        std::vector<int> fill(start_.begin(), start_.end() - 1);
        for (size_t a = 0; a < m; ++a) {
            if (merged[a]) continue;
            const int f = fill[tails[a]]++, b = fill[heads[a]]++;
            head_[f] = heads[a];
            cap_[f] = caps[a];
            mate_[f] = b;
            head_[b] = tails[a];
            cap_[b] = back[a];  // the residual arc, or the reverse arc given
            mate_[b] = f;
        }
        residual_ = cap_;
        base_residual_ = cap_;
        seen_node_.assign(n_, 0);
        seen_arc_.assign(2 * kept, 0);
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
            added_.assign(words_, 0);
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
        const Words in = words_of(inside), out = words_of(outside);
        std::vector<Words> more;
        for (const py::bytes& extra : extras) more.push_back(words_of(extra));
        std::vector<const Words*> pointers;
        for (const Words& extra : more) pointers.push_back(&extra);
        std::vector<Answer> found;
        {
            py::gil_scoped_release release;  // another thread's cuts may run meanwhile
            group(in, out, pointers, want_side, found);
        }
        for (const Answer& a : found) {
            if (a.cut < 0) {
                answers.append(py::make_tuple(-1, py::bytes()));
            } else {
                answers.append(py::make_tuple(a.cut, want_side ? bytes_of(a.side) : py::bytes()));
            }
        }
        return answers;
    }

    // The cuts of the queries ``inside | extras[i]`` against ``outside | sinks[i]``
    // (bits as for ``solve_bits``), one each (-1: none finite), each grown from the
    // maximum flow of ``inside`` against ``outside`` alone (``group``).
    std::vector<int64_t> solve_between(const py::bytes& inside, const py::bytes& outside,
                                       const std::vector<py::bytes>& extras,
                                       const std::vector<py::bytes>& sinks) {
        if (!has_closures()) throw std::invalid_argument("solve_between needs the closures");
        if (sinks.size() != extras.size()) throw std::invalid_argument("extras and sinks differ in length");
        const Words in = words_of(inside), out = words_of(outside);
        std::vector<Words> more, fewer;
        for (const py::bytes& extra : extras) more.push_back(words_of(extra));
        for (const py::bytes& sink : sinks) fewer.push_back(words_of(sink));
        std::vector<const Words*> pointers, sink_pointers;
        for (const Words& extra : more) pointers.push_back(&extra);
        for (const Words& sink : fewer) sink_pointers.push_back(&sink);
        std::vector<Answer> found;
        {
            py::gil_scoped_release release;
            group(in, out, pointers, false, found, nullptr, nullptr, &sink_pointers);
        }
        std::vector<int64_t> cuts;
        for (const Answer& a : found) cuts.push_back(a.cut);
        return cuts;
    }

    // The work of the max-flows so far: the arcs their levels and blocking flows
    // scanned (a count, not a time: ``StepCuts`` compares graphs by it).
    uint64_t work() const { return work_; }

    // Whether each side node's closures are kept (``group`` needs them).
    bool has_closures() const { return !closures_.empty(); }
    int side_nodes() const { return side_nodes_; }

    // ``solve_group`` on bitsets of the side nodes (``op_words`` words each): the
    // answers in ``found``, each side (with ``want_side``) as such a bitset.
    //
    // With ``warm``, the flow of the smaller query starts from that flow, kept by an
    // earlier group (``keep``) whose source side lies within this one's and whose
    // sink side holds this one's (``Flow``).
    //
    // With ``sinks``, query ``e`` also forces ``*sinks[e]`` to the sink side: a flow
    // of the smaller query is still one of each larger (nodes that were free join
    // either side, every arc keeps its capacity), but the smaller query's least source
    // side may hold a node now forced to the sink: it stays free, and each query
    // searches from the whole source side.
    //
    // With ``limits``, query ``e``'s flow stops at the end of a phase that takes it
    // past ``(*limits)[e]`` (``dinic``): its answer is then that flow, not exact (a
    // lower bound), without a side.
    void group(const Words& inside, const Words& outside, const std::vector<const Words*>& extras,
               bool want_side, std::vector<Answer>& found, const Flow* warm = nullptr,
               Flow* keep = nullptr, const std::vector<const Words*>* sinks = nullptr,
               const std::vector<int64_t>* limits = nullptr) {
        found.assign(extras.size(), Answer{-1, {}});
        if (keep != nullptr) keep->valid = false;
        begin();
        start_closures();
        words_closure(inside, in_, true);
        words_closure(outside, out_, false);
        int64_t base = -1;
        if (mark_closures()) {
            const int64_t start = warm != nullptr ? warmed(*warm) : 0;
            if (start < 0) {  // cannot happen (module comment); solved from the empty flow
                reset_to(cap_);
                base = dinic(0);
            } else {
                base = dinic(start);
            }
        }
        if (base < 0) {  // every larger query has no finite cut either
            reset_to(cap_);
            return;
        }
        if (keep != nullptr) {
            keep->arcs.clear();
            ++stamp_;
            for (int a : touched_)
                if (seen_arc_[a] != stamp_) {
                    seen_arc_[a] = stamp_;
                    keep->arcs.emplace_back(a, residual_[a]);
                }
            keep->source = in_;
            keep->sink = out_;
            keep->value = base;
            keep->valid = true;
        }
        base_touched_.swap(touched_);
        for (int a : base_touched_) {
            base_residual_[a] = residual_[a];
            base_residual_[mate_[a]] = residual_[mate_[a]];
        }
        // The least source side of the smaller query: what the last search reached.
        reach_.assign(words_, 0);
        for (int v = 0; v < n_; ++v)
            if (level_[v] >= 0) reach_[v >> 6] |= uint64_t{1} << (v & 63);
        if (sinks == nullptr) {
            source_nodes_.clear();
            for (int v = 0; v < n_; ++v)
                if (level_[v] >= 0) {
                    side_[v] = 1;
                    source_nodes_.push_back(v);
                }
            in_ = reach_;
        }
        base_in_ = in_;
        base_out_ = out_;
        const size_t sources = source_nodes_.size();
        for (size_t e = 0; e < extras.size(); ++e) {
            words_closure(*extras[e], in_, true);
            if (sinks != nullptr) words_closure(*(*sinks)[e], out_, false);
            bool forced = true;
            for (size_t i = 0; i < words_ && forced; ++i) forced = !(in_[i] & out_[i]);
            if (forced) {
                for (size_t i = 0; i < words_; ++i) added_[i] = in_[i] & ~base_in_[i];
                size_t first = sources;
                if (sinks != nullptr) {
                    // Where no node of the least source side is now forced to the sink,
                    // it joins the source side (as above: R | B is then a cut of the
                    // larger query) and is not searched from; else each query searches
                    // from the whole source side.
                    bool merge = true;
                    for (size_t i = 0; i < words_ && merge; ++i) merge = !(reach_[i] & out_[i]);
                    if (merge) {
                        for (size_t i = 0; i < words_; ++i) {
                            for (uint64_t w = reach_[i] & ~in_[i]; w; w &= w - 1) {
                                const int v = static_cast<int>(64 * i) + __builtin_ctzll(w);
                                side_[v] = 1;
                                source_nodes_.push_back(v);
                            }
                            in_[i] |= reach_[i];
                        }
                    }
                    first = merge ? source_nodes_.size() : 0;
                }
                for (size_t i = 0; i < words_; ++i) {
                    for (uint64_t w = added_[i]; w; w &= w - 1) {
                        const int v = static_cast<int>(64 * i) + __builtin_ctzll(w);
                        side_[v] = 1;
                        source_nodes_.push_back(v);
                    }
                    for (uint64_t w = out_[i] & ~base_out_[i]; w; w &= w - 1)
                        side_[64 * i + __builtin_ctzll(w)] = 2;
                }
                found[e].cut = dinic(base, first, limits != nullptr ? (*limits)[e] : kNoLimit);
                if (stopped_) {
                    found[e].exact = false;
                } else if (found[e].cut >= 0 && want_side) {
                    side_words(found[e].side);
                }
                for (size_t i = 0; i < words_; ++i)
                    for (uint64_t w = out_[i] & ~base_out_[i]; w; w &= w - 1)
                        side_[64 * i + __builtin_ctzll(w)] = 0;
            }
            reset_to(base_residual_);
            for (size_t q = sources; q < source_nodes_.size(); ++q) side_[source_nodes_[q]] = 0;
            source_nodes_.resize(sources);
            in_ = base_in_;
            out_ = base_out_;
        }
        touched_.swap(base_touched_);
        for (int a : touched_) {
            base_residual_[a] = cap_[a];
            base_residual_[mate_[a]] = cap_[mate_[a]];
        }
        reset_to(cap_);
    }

    // ``solve_bits`` on bitsets of the side nodes (as ``group``).
    void single(const Words& inside, const Words& outside, bool want_side, Answer& found,
                int64_t limit = kNoLimit) {
        begin();
        start_closures();
        words_closure(inside, in_, true);
        words_closure(outside, out_, false);
        found.cut = -1;  // no finite cut when the forced sides meet
        found.exact = true;
        if (mark_closures()) {
            found.cut = dinic(0, 0, limit);
            found.exact = !stopped_;
            if (found.exact && found.cut >= 0 && want_side) side_words(found.side);
        }
        reset_to(cap_);
    }

    // The source side of the minimum cut just found, as a bitset of the side nodes
    // (levels() left level_ >= 0 exactly on the nodes the residual graph reaches).
    void side_words(Words& side) const {
        side.assign(op_words(), 0);
        for (int v = 0; v < side_nodes_; ++v)
            if (level_[v] >= 0) side[v >> 6] |= uint64_t{1} << (v & 63);
    }

    // Words of a bitset of the side nodes.
    size_t op_words() const { return (static_cast<size_t>(side_nodes_) + 63) / 64; }

    // A bitset of the side nodes from little-endian bytes (checked as ``each_bit``).
    Words words_of(const py::bytes& bits) const {
        Words words(op_words(), 0);
        each_bit(bits, [&](int v) { words[v >> 6] |= uint64_t{1} << (v & 63); });
        return words;
    }

    // Little-endian bytes of a bitset of the side nodes.
    py::bytes bytes_of(const Words& words) const {
        std::string bits((side_nodes_ + 7) / 8, '\0');
        for (size_t i = 0; i < bits.size(); ++i)
            bits[i] = static_cast<char>(words[i >> 3] >> (8 * (i & 7)) & 0xff);
        return py::bytes(bits);
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

    void words_closure(const Words& bits, std::vector<uint64_t>& into, bool forward) {
        for (size_t i = 0; i < bits.size(); ++i)
            for (uint64_t w = bits[i]; w; w &= w - 1)
                add_closure(into, static_cast<int>(64 * i) + __builtin_ctzll(w), forward);
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
    // ``source_nodes_`` have none): the maximum flow, or -1 when it is infinite. When
    // a phase ends with the flow past ``limit`` it stops (``stopped_``): the flow so
    // far, a lower bound of the maximum, and the levels give no side.
    int64_t dinic(int64_t flow, size_t first = 0, int64_t limit = kNoLimit) {
        stopped_ = false;
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
            if (flow > limit) {
                stopped_ = true;
                return flow;
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
            work_ += start_[v + 1] - start_[v];
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

    // The residual graph of ``warm`` (sides marked): the nodes it had on the sink
    // side that are no longer there give their inflow back (to the source side, when
    // they are free now), and those it had on the source side take back their outflow
    // (below). Returns the flow into the sink side, -1 if some flow found no way back.
    int64_t warmed(const Flow& warm) {
        for (const auto& [a, residual] : warm.arcs) {
            residual_[a] = residual;
            residual_[mate_[a]] = cap_[a] + cap_[mate_[a]] - residual;
            touched_.push_back(a);
        }
        int64_t value = warm.value;
        for (size_t i = 0; i < words_; ++i)
            for (uint64_t w = warm.sink[i] & ~out_[i]; w; w &= w - 1) {
                const int v = static_cast<int>(64 * i) + __builtin_ctzll(w);
                const int64_t excess = inflow(v);
                value -= excess;
                if (side_[v] == 1) continue;  // the source side takes it
                if (settle(v, excess, true, 1u << 1) < 0) return -1;
            }
        // The mirror: nodes that left the source side owe their outflow. One now on
        // the sink side adds its (negative) inflow to the value; a free one takes it
        // back over a residual path from either side (from the sink side, the flow
        // into it falls by as much).
        for (size_t i = 0; i < words_; ++i)
            for (uint64_t w = warm.source[i] & ~in_[i]; w; w &= w - 1) {
                const int v = static_cast<int>(64 * i) + __builtin_ctzll(w);
                const int64_t owed = -inflow(v);
                if (side_[v] == 2) {
                    value -= owed;
                    continue;
                }
                const int64_t from_sink = settle(v, owed, false, 1u << 1 | 1u << 2);
                if (from_sink < 0) return -1;
                value -= from_sink;
            }
        return value;
    }

    // A node's inflow: every arc's flow, in less out.
    int64_t inflow(int v) const {
        int64_t in = 0;
        for (int a = start_[v]; a < start_[v + 1]; ++a) in += residual_[a] - cap_[a];
        return in;
    }

    // Moves ``amount`` over residual paths between the free node v and the sides whose
    // marks are bits of ``ends`` (1 << 1: the source side, 1 << 2: the sink side), out
    // of v (``out``) or into it, through free nodes only. Returns how much of it the
    // sink side gave or took, -1 when some of it found no path.
    int64_t settle(int v, int64_t amount, bool out, unsigned ends) {
        int64_t sink = 0;
        while (amount > 0) {
            ++stamp_;
            char end = 0;
            const int64_t moved = route(v, amount, out, ends, end);
            if (moved == 0) return -1;
            if (end == 2) sink += moved;
            amount -= moved;
        }
        return sink;
    }

    // One path of ``settle``'s from v, carrying at most ``limit`` (``end``: the mark of
    // the side it reached); 0 when none.
    int64_t route(int v, int64_t limit, bool out, unsigned ends, char& end) {
        seen_node_[v] = stamp_;
        for (int a = start_[v]; a < start_[v + 1]; ++a) {
            const int w = head_[a], arc = out ? a : mate_[a];  // arc: v -> w, or w -> v
            if (residual_[arc] <= 0 || seen_node_[w] == stamp_) continue;
            int64_t moved;
            if (side_[w] == 0) {
                moved = route(w, std::min(limit, residual_[arc]), out, ends, end);
            } else if (ends >> side_[w] & 1) {
                end = side_[w];
                moved = std::min(limit, residual_[arc]);
            } else {
                continue;
            }
            if (moved > 0) return shift(arc, moved);
        }
        return 0;
    }

    // Moves ``amount`` of flow along arc ``a`` (reset later); returns ``amount``.
    int64_t shift(int a, int64_t amount) {
        touched_.push_back(a);
        residual_[a] -= amount;
        residual_[mate_[a]] += amount;
        return amount;
    }

    // One augmenting path of the level graph from v, at most ``limit``; 0 when none.
    int64_t push(int v, int64_t limit) {
        if (side_[v] == 2) return limit;
        for (int& a = next_[v]; a < start_[v + 1]; ++a) {
            ++work_;
            const int w = head_[a];
            if (residual_[a] <= 0 || level_[w] != level_[v] + 1) continue;
            const int64_t pushed = push(w, std::min(limit, residual_[a]));
            if (pushed > 0) return shift(a, pushed);
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
    std::vector<uint64_t> closures_, in_, out_, base_in_, base_out_, reach_, added_;
    std::vector<int64_t> cap_, residual_, base_residual_;  // base: a group's first flow
    std::vector<char> side_;
    std::vector<uint64_t> seen_node_, seen_arc_;  // == stamp_: met in this search
    uint64_t stamp_ = 0;
    uint64_t work_ = 0;  // work(): counted by levels() and push()
    bool stopped_ = false;  // the last dinic() stopped past its limit

  public:
    static constexpr int64_t kNoLimit = std::numeric_limits<int64_t>::max();
};

// The sequences of the cut bound's chosen ops (``serenity.memory.cuts._Sequences``,
// the reference, whose docstrings say what each step means): the same depth-first
// search over the sets of chosen ops run, the same caches (the cuts known per op and
// set, the previous choice's cuts, the dead sets of this choice and of the smaller
// ones), the same budget of max-flows and the same forgetting, so that both find the
// same levels, sequences and counts of max-flows (the tests compare them; with
// ``stop_past_level`` off, below). Sets of
// chosen ops are kept as bytes of their indices' bits (a smaller choice's chosen ops
// are the first ones of a larger choice's, so its sets are a prefix); sets of ops
// (the downsets) as bitsets of the side nodes. What it adds: each group's first
// max-flow starts from the flow kept at the nearest depth above it (module comment).
class Sequences {
  public:
    // ``chosen``: the ops; ``direct``: per chosen op, the bits of the ops that must run
    // before it (as bytes); ``steps``: per chosen op, what its step adds to a cut;
    // ``ancestors``: per chosen op, the indices of the chosen ops among its ancestors;
    // ``most``: bytes the cuts and dead sets kept may take, counted ``cut_bytes`` a
    // cut and ``dead_bytes`` a dead set; ``previous``: the previous choice (its first
    // ops are this one's first), whose cuts and dead sets this one takes over, with
    // those of ``dead_choices`` - 1 smaller ones. ``reverse``: the sequences are built
    // from the end (``cuts._SequencesBase``): a set "run" holds the ops placed last,
    // ``ancestors`` then holds each op's chosen descendants, and each op's cut puts the
    // chosen ops not in the set before it.
    Sequences(Cuts& cuts, const std::vector<int>& chosen, const std::vector<py::bytes>& direct,
              const std::vector<int64_t>& steps, const std::vector<std::vector<int>>& ancestors,
              int64_t most, int64_t cut_bytes, int64_t dead_bytes, Sequences* previous,
              int dead_choices, bool reverse, bool stop_past_level)
        : cuts_(cuts), chosen_(chosen), steps_(steps), most_(most), cut_bytes_(cut_bytes),
          dead_bytes_(dead_bytes), reverse_(reverse), stop_past_level_(stop_past_level) {
        if (!cuts.has_closures()) throw std::invalid_argument("the sequences need the closures");
        k_ = static_cast<int>(chosen.size());
        if (direct.size() != chosen.size() || steps.size() != chosen.size() ||
            ancestors.size() != chosen.size())
            throw std::invalid_argument("per chosen op arrays differ in length");
        const size_t w = cuts.op_words();
        mask_.assign(w, 0);
        for (int x : chosen) {
            if (x < 0 || x >= cuts.side_nodes()) throw std::invalid_argument("chosen op out of range");
            mask_[x >> 6] |= uint64_t{1} << (x & 63);
        }
        for (const py::bytes& d : direct) direct_.push_back(cuts.words_of(d));
        ancestors_.assign(k_, std::string(bytes(), '\0'));
        for (int i = 0; i < k_; ++i)
            for (int j : ancestors[i]) {
                if (j < 0 || j >= k_) throw std::invalid_argument("ancestor index out of range");
                set_bit(ancestors_[i], j);
            }
        fresh_ = mask_;
        if (previous != nullptr) {
            if (previous->k_ > k_) throw std::invalid_argument("the previous choice is larger");
            if (previous->reverse_ != reverse_)
                throw std::invalid_argument("the previous choice runs the other way");
            for (int i = 0; i < previous->k_; ++i)
                if (previous->chosen_[i] != chosen[i])
                    throw std::invalid_argument("the previous choice is not a prefix");
            prior_k_ = previous->k_;
            prior_.swap(previous->known_);
            for (size_t i = 0; i < w; ++i) fresh_[i] = mask_[i] & ~previous->mask_[i];
            prior_dead_.emplace_back(previous->k_, previous->dead_);
            for (const auto& smaller : previous->prior_dead_) prior_dead_.push_back(smaller);
            if (static_cast<int>(prior_dead_.size()) > dead_choices) prior_dead_.resize(dead_choices);
            for (const auto& smaller : prior_dead_) prior_dead_count_ += smaller.second->size();
        }
        dead_ = std::make_shared<DeadMap>();
    }

    // ``_Sequences.bound``: (the level, finished, the max-flows counted so far), from
    // ``solves`` counted before; ``upper`` < 0: none; ``seconds`` < 0: no deadline.
    py::tuple bound(int64_t level, int64_t upper, int64_t stop_at, int64_t solves, double seconds) {
        stop_at_ = stop_at;
        solves_ = solves;
        has_deadline_ = seconds >= 0;
        if (has_deadline_)
            deadline_ = std::chrono::steady_clock::now() +
                        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                            std::chrono::duration<double>(seconds));
        bool finished = true;
        {
            py::gil_scoped_release release;
            try {
                while (upper < 0 || level < upper) {
                    std::vector<Step> path;
                    std::string done(bytes(), '\0');
                    Words inside(cuts_.op_words(), 0);
                    const int64_t found = fits(done, 0, inside, level, path);
                    if (found == 0) {
                        path_ = std::move(path);
                        has_path_ = true;
                        break;
                    }
                    if (found == kNever) break;  // no order of them: cannot happen with a DAG
                    level = found;
                }
            } catch (const OutOfSolves&) {
                finished = false;
            }
        }
        return py::make_tuple(level, finished, solves_);
    }

    // The chosen ops' indices in the order of the last sequence found, and per op the
    // downset its cut is reached from (bytes of the ops' bits); None before one.
    py::object path() const {
        if (!has_path_) return py::none();
        py::list indices, sides;
        for (size_t q = 0; q < path_.size(); ++q) {  // in the order they run, either way
            const Step& step = path_[reverse_ ? path_.size() - 1 - q : q];
            indices.append(step.index);
            sides.append(cuts_.bytes_of(*step.side));
        }
        return py::make_tuple(indices, sides);
    }

    size_t kept() const { return known_.size() + prior_.size() + dead_->size() + prior_dead_count_; }
    // ``_Sequences.held``: the bytes counted for them.
    int64_t held() const {
        return static_cast<int64_t>(known_.size() + prior_.size()) * cut_bytes_ +
               static_cast<int64_t>(dead_->size() + prior_dead_count_) * dead_bytes_;
    }
    int64_t forgotten() const { return forgotten_; }

    // The order in which a set's next ops are tried (``cuts._Sequences.guide``): by
    // ``guide`` (per chosen op; empty: by the least cut), ties by the least cut.
    void set_guide(const std::vector<int64_t>& guide) {
        if (!guide.empty() && guide.size() != chosen_.size())
            throw std::invalid_argument("one place per chosen op");
        guide_ = guide;
    }

    // The dead sets, this choice's first, then the smaller ones': (chosen ops, [(bytes
    // of the indices' bits, level)]).
    py::list dead_sets() const {
        py::list all;
        auto add = [&](int k, const DeadMap& dead) {
            py::list entries;
            for (const auto& [set, level] : dead) entries.append(py::make_tuple(py::bytes(set), level));
            all.append(py::make_tuple(k, entries));
        };
        add(k_, *dead_);
        for (const auto& [k, dead] : prior_dead_) add(k, *dead);
        return all;
    }

  private:
    using DeadMap = std::unordered_map<std::string, int64_t>;
    using Side = std::shared_ptr<const Words>;
    struct OutOfSolves {};
    // A cut known: its value (-1: none) and the downset it is reached from (shared by
    // the caches and the path, never changed).
    struct Known {
        int64_t cut;
        Side side;
        bool exact = true;  // false: ``cut`` is a lower bound (above the level it was asked at)
    };
    struct Step {
        int index;
        Side side;
    };
    static constexpr int64_t kNever = std::numeric_limits<int64_t>::max();  // Python: NEVER

    size_t bytes() const { return (static_cast<size_t>(k_) + 7) / 8; }
    static void set_bit(std::string& set, int i) {
        set[i >> 3] = static_cast<char>(set[i >> 3] | (1 << (i & 7)));
    }
    static void clear_bit(std::string& set, int i) {
        set[i >> 3] = static_cast<char>(set[i >> 3] & ~(1 << (i & 7)));
    }
    static bool has_bit(const std::string& set, int i) { return set[i >> 3] >> (i & 7) & 1; }
    // The set of the first ``k`` chosen ops of ``set`` (a smaller choice's key).
    static std::string prefix(const std::string& set, int k) {
        std::string cut = set.substr(0, (static_cast<size_t>(k) + 7) / 8);
        if (k & 7) cut.back() = static_cast<char>(cut.back() & ((1 << (k & 7)) - 1));
        return cut;
    }
    static std::string key(const std::string& set, int index) {
        std::string both = set;
        both.append(reinterpret_cast<const char*>(&index), sizeof index);
        return both;
    }

    void spend() {
        if (solves_ >= stop_at_ || (has_deadline_ && std::chrono::steady_clock::now() >= deadline_))
            throw OutOfSolves{};
    }

    // ``_Sequences.make_room``: before ``cuts`` more cuts and ``dead`` more dead sets.
    void make_room(size_t cuts, size_t dead) {
        const int64_t most = most_ - static_cast<int64_t>(cuts) * cut_bytes_ -
                             static_cast<int64_t>(dead) * dead_bytes_;
        if (held() < most) return;
        ++forgotten_;
        known_.clear();
        prior_.clear();
        if (held() >= most) {
            prior_dead_.clear();
            prior_dead_count_ = 0;
            if (held() >= most) dead_->clear();
        }
    }

    // The flow kept by the nearest set run (or placed) before depth ``count`` on the
    // search's path, or none.
    const Flow* nearest_flow(int count) const {
        for (int d = count - 1; d >= 0; --d)
            if (flows_[d].valid) return &flows_[d];
        return nullptr;
    }

    // Whether a cut kept answers a search at ``level``: exact, or a lower bound past it.
    static bool usable(const Known& known, int64_t level) {
        return known.exact || known.cut > level;
    }

    void kill(const std::string& done, int64_t least) {
        make_room(0, 1);
        (*dead_)[done] = least;
    }

    // ``_Sequences.cuts_of``: the answers of the chosen ops ``ready`` (indices) with
    // the chosen ops of ``done`` (``inside``: as ops) run before them.
    void cuts_of(const std::vector<int>& ready, const std::string& done, int count,
                 const Words& inside, int64_t level, std::vector<Known>& found) {
        make_room(ready.size(), 0);
        found.assign(ready.size(), Known{-1, nullptr});
        std::vector<int> xs;  // positions in ready to solve
        std::vector<const Words*> extras;
        const std::string since = prior_k_ ? prefix(done, prior_k_) : std::string();
        // The chosen ops each cut puts before its op (bar the op itself, never fresh).
        Words before = inside;
        if (reverse_)
            for (size_t j = 0; j < before.size(); ++j) before[j] = mask_[j] & ~inside[j];
        for (size_t r = 0; r < ready.size(); ++r) {
            const int i = ready[r];
            auto it = known_.find(key(done, i));
            if (it != known_.end() && usable(it->second, level)) {
                found[r] = it->second;
                continue;
            }
            if (i < prior_k_) {
                auto old = prior_.find(key(since, i));
                if (old != prior_.end() && usable(old->second, level)) {
                    bool same = true;
                    if (old->second.exact && old->second.cut >= 0)
                        for (size_t j = 0; j < before.size() && same; ++j)
                            same = !(((*old->second.side)[j] ^ before[j]) & fresh_[j]);
                    if (same) {
                        found[r] = old->second;
                        known_[key(done, i)] = old->second;
                        continue;
                    }
                }
            }
            xs.push_back(static_cast<int>(r));
            extras.push_back(&direct_[i]);
        }
        if (xs.empty()) return;
        spend();
        const size_t room = static_cast<size_t>(stop_at_ - solves_);
        Words outside(inside.size());
        for (size_t j = 0; j < inside.size(); ++j) outside[j] = mask_[j] & ~inside[j];
        const size_t take = std::min(room, xs.size());
        std::vector<Answer> solved(1);
        // With ``stop_past_level`` each max-flow stops once a phase takes its op's cut past
        // the level (``Cuts::dinic``): the value it reached is kept as a lower bound, which
        // prunes the op at this level, enters the least level above it as any cut
        // would (a lower bound keeps that level one every sequence reaches), and is
        // solved again if a search at a higher level asks for it.
        std::vector<int64_t> limits(take, Cuts::kNoLimit);
        if (stop_past_level_)
            for (size_t q = 0; q < take; ++q) limits[q] = level - steps_[ready[xs[q]]];
        if (reverse_ && xs.size() == 1) {  // one max-flow: the others before, the set after
            const int x = chosen_[ready[xs[0]]];
            Words in = before, out = inside;
            in[x >> 6] &= ~(uint64_t{1} << (x & 63));
            for (size_t j = 0; j < in.size(); ++j) in[j] |= (*extras[0])[j];
            out[x >> 6] |= uint64_t{1} << (x & 63);
            cuts_.single(in, out, true, solved[0], limits[0]);
        } else if (reverse_) {
            // Each op's query puts the other ops asked before it and itself after: the
            // max-flow of what every query puts before its op is solved once, and each
            // op's grown from it (its own sink side: ``Cuts::group`` as for
            // ``solve_between``). What every query puts before: the ops before all of
            // them, and each asked op's predecessors. No op asked is an ancestor of
            // another (an op is ready once its chosen descendants are all placed), so
            // each query holds every other op's predecessors (with that op) and its
            // own, and no op asked is among them. With the predecessors in the shared
            // flow each query adds the other ops alone: the same cuts, and the cut
            // bound alone on ER N=56-64 and WS N=256 took 0.83-0.96 of the time
            // (``cuts.py``, "From the end").
            Words common = before, asked(inside.size(), 0);
            for (int r : xs) {
                const int x = chosen_[ready[r]];
                asked[x >> 6] |= uint64_t{1} << (x & 63);
            }
            for (size_t j = 0; j < common.size(); ++j) common[j] &= ~asked[j];
            for (const Words* extra : extras)
                for (size_t j = 0; j < common.size(); ++j) common[j] |= (*extra)[j];
            // Each query's own sides: the other ops asked before (its predecessors are
            // in ``common``), itself after.
            std::vector<Words> ins(take, asked), outs(take, Words(inside.size(), 0));
            std::vector<const Words*> in_ptrs(take), out_ptrs(take);
            for (size_t q = 0; q < take; ++q) {
                const int x = chosen_[ready[xs[q]]];
                ins[q][x >> 6] &= ~(uint64_t{1} << (x & 63));
                outs[q][x >> 6] |= uint64_t{1} << (x & 63);
                in_ptrs[q] = &ins[q];
                out_ptrs[q] = &outs[q];
            }
            cuts_.group(common, inside, in_ptrs, true, solved, nearest_flow(count),
                        &flows_[count], &out_ptrs, &limits);
        } else if (xs.size() == 1) {  // one max-flow, not a group's two
            Words both = inside;
            for (size_t j = 0; j < both.size(); ++j) both[j] |= (*extras[0])[j];
            cuts_.single(both, outside, true, solved[0], limits[0]);  // the op is outside already
        } else {
            extras.resize(take);
            cuts_.group(inside, outside, extras, true, solved, nearest_flow(count),
                        &flows_[count], nullptr, &limits);
        }
        solves_ += static_cast<int64_t>(take);
        for (size_t q = 0; q < take; ++q) {
            const int r = xs[q];
            Answer& answer = solved[q];
            Known known{-1, nullptr};
            if (!answer.exact) {
                known = Known{answer.cut + steps_[ready[r]], nullptr, false};
            } else if (answer.cut >= 0) {
                known = Known{answer.cut + steps_[ready[r]],
                              std::make_shared<const Words>(std::move(answer.side))};
            }
            known_[key(done, ready[r])] = known;
            found[r] = std::move(known);
        }
        if (xs.size() > room) throw OutOfSolves{};
    }

    // ``_Sequences.fits``: 0 when the chosen ops not in ``done`` (``count`` of them
    // in it; ``inside``: those ops) can follow within ``level`` (``path`` then ends
    // with them), else a level every such sequence reaches.
    int64_t fits(std::string& done, int count, Words& inside, int64_t level, std::vector<Step>& path) {
        if (count == k_) return 0;
        {
            auto it = dead_->find(done);
            if (it != dead_->end() && level < it->second) return it->second;
        }
        for (const auto& [k, dead] : prior_dead_) {
            auto it = dead->find(prefix(done, k));
            if (it != dead->end() && level < it->second) {
                const int64_t least = it->second;
                kill(done, least);
                return least;
            }
        }
        std::vector<int> ready;
        for (int i = 0; i < k_; ++i) {
            if (has_bit(done, i)) continue;
            bool free = true;
            for (size_t b = 0; b < done.size() && free; ++b)
                free = !(ancestors_[i][b] & ~done[b]);
            if (free) ready.push_back(i);
        }
        std::vector<Known> answers;
        if (flows_.size() <= static_cast<size_t>(count)) flows_.resize(count + 1);
        flows_[count].valid = false;  // a sibling's, or none
        cuts_of(ready, done, count, inside, level, answers);
        int64_t least = kNever;
        struct Next {
            int64_t cut;
            int index;
            Side side;
        };
        std::vector<Next> steps;
        for (size_t r = 0; r < ready.size(); ++r) {
            const int64_t c = answers[r].cut;
            if (c < 0) continue;
            if (c > level) {
                least = std::min(least, c);
            } else if (!answers[r].exact) {  // cannot happen: a max-flow stops past it
                throw std::logic_error("a lower bound within the level");
            } else {
                steps.push_back(Next{c, ready[r], answers[r].side});
            }
        }
        // The guide's order first (``set_guide``), else the least cut; then the index.
        std::sort(steps.begin(), steps.end(), [this](const Next& a, const Next& b) {
            if (!guide_.empty() && guide_[a.index] != guide_[b.index])
                return guide_[a.index] < guide_[b.index];
            return a.cut != b.cut ? a.cut < b.cut : a.index < b.index;
        });
        for (const Next& step : steps) {
            const int i = step.index, x = chosen_[i];
            path.push_back(Step{i, step.side});
            set_bit(done, i);
            inside[x >> 6] |= uint64_t{1} << (x & 63);
            const int64_t found = fits(done, count + 1, inside, level, path);
            clear_bit(done, i);
            inside[x >> 6] &= ~(uint64_t{1} << (x & 63));
            if (found == 0) return 0;
            least = std::min(least, found);
            path.pop_back();
        }
        kill(done, least);
        return least;
    }

    Cuts& cuts_;
    std::vector<int> chosen_;
    std::vector<int64_t> steps_;
    std::vector<int64_t> guide_;  // per chosen op, its place in a known order (or empty)
    int64_t most_, cut_bytes_, dead_bytes_;
    bool reverse_ = false;
    bool stop_past_level_ = true;  // a max-flow stops once a phase takes its cut past the level
    int k_ = 0, prior_k_ = 0;
    Words mask_, fresh_;
    std::vector<Words> direct_;
    std::vector<std::string> ancestors_;
    std::unordered_map<std::string, Known> known_, prior_;
    std::shared_ptr<DeadMap> dead_;
    std::vector<std::pair<int, std::shared_ptr<DeadMap>>> prior_dead_;
    size_t prior_dead_count_ = 0;
    int64_t forgotten_ = 0;
    int64_t stop_at_ = 0, solves_ = 0;
    bool has_deadline_ = false;
    std::chrono::steady_clock::time_point deadline_;
    std::vector<Step> path_;
    bool has_path_ = false;
    // Per depth of the search (chosen ops run): the flow of the set run there, while
    // valid (a group's; the sets below it start from it).
    std::vector<Flow> flows_;
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
             py::arg("extras"), py::arg("want_side"))
        .def("solve_between", &Cuts::solve_between, py::arg("inside"), py::arg("outside"),
             py::arg("extras"), py::arg("sinks"))
        .def("has_closures", &Cuts::has_closures)
        .def("work", &Cuts::work);
    py::class_<Sequences>(m, "Sequences")
        .def(py::init<Cuts&, const std::vector<int>&, const std::vector<py::bytes>&,
                      const std::vector<int64_t>&, const std::vector<std::vector<int>>&, int64_t,
                      int64_t, int64_t, Sequences*, int, bool, bool>(),
             py::arg("cuts"), py::arg("chosen"), py::arg("direct"), py::arg("steps"),
             py::arg("ancestors"), py::arg("most"), py::arg("cut_bytes"), py::arg("dead_bytes"),
             py::arg("previous").none(true),
             py::arg("dead_choices"), py::arg("reverse") = false,
             py::arg("stop_past_level") = true, py::keep_alive<1, 2>())
        .def("bound", &Sequences::bound, py::arg("level"), py::arg("upper"), py::arg("stop_at"),
             py::arg("solves"), py::arg("seconds"))
        .def("path", &Sequences::path)
        .def("kept", &Sequences::kept)
        .def("held", &Sequences::held)
        .def("forgotten", &Sequences::forgotten)
        .def("set_guide", &Sequences::set_guide, py::arg("guide"))
        .def("dead_sets", &Sequences::dead_sets);
}
