// Compiled core of the exact engine's best-first segment search.
//
// A line-by-line port of ``serenity.schedule.exact._Search._run_python`` (the
// reference): same heap keys (f, -depth, counter, g, done, mem, last, ready) compared
// as Python compares the tuples, same counter increments (lazy re-pushes included),
// same step order (ascending op index), same free-move choice, same closed set, same
// counters and the same stop conditions, so that for any input it returns the same
// order, peak, level and expansion count. Only the memory cap differs: it counts the
// real bytes of the closed table and the heap instead of the Python estimate.
//
// The ops of the segment (goal & ~start) are re-indexed locally 0..n-1 in increasing
// global order, so masks compare as the Python integers do. Masks are W 64-bit words
// (a template parameter); the Python side picks the smallest W that fits.
//
// It also ports the decision search ``serenity.schedule.decide.within`` (Core::decide):
// same visits, same first order found and same next level as the reference. Its dead
// sets live in a DeadSet, not a Closed<W>: each mask in ceil(n / 64) words in an arena of
// fixed blocks, an 8-byte slot (arena index, 32-bit hash tag) per table entry, load 3/4
// (9/10 when doubling would pass the cap): 43-44 B per dead set on the 167-180-op
// segments of RandWire WS N=48 where Closed<4> took 72-144 B plus a rehash's copy. Its
// memory cap is checked every 1,024 visits against every byte the set could allocate
// before the next check (blocks, a table rebuild): there it forgets the lighter half of
// its sets (at most 4 times a decision) or stops, before passing the cap.
//
// Complexity per expansion: O(ready ops x (inputs x consumers + successors)) plus
// O(W log states) for the heap and O(W) expected for the closed table; per decision
// visit the same step work plus O(n / 64) expected for the dead sets. On big tables a
// dead-set lookup is mostly a cache miss: a frame hashes its successors and prefetches
// their slots when it is pushed (WS N=48 seed 1: 1.3x the visits per CPU second), and
// does not step into a set whose memory plus the least rise of any step passes the
// limit: it has no step within it (a dead end; a third of the visits of WS N=32 seed 2's
// proof entered such sets), and that sum stands in for its steps in the next level
// (decide.py, "Dead ends": WS N=64 seed 0's proof 347M -> 217M visits, 1.1x CPU).

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <unordered_map>
#include <vector>

namespace py = pybind11;

namespace {

using i64 = std::int64_t;
using u64 = std::uint64_t;
using Clock = std::chrono::steady_clock;

// When a run() or decide() call stops: the deadline (`remaining` seconds from now,
// none when remaining >= 1e18) and the end of its slice.
struct Stops {
    bool has_deadline;
    Clock::time_point deadline, slice_end;
    Stops(double remaining, double slice) : has_deadline(remaining < 1e18) {
        auto now = Clock::now();
        auto after = [now](double s) {
            return now + std::chrono::duration_cast<Clock::duration>(
                             std::chrono::duration<double>(s));
        };
        deadline = after(has_deadline ? remaining : 0.0);
        slice_end = after(slice);
    }
    bool timed_out(Clock::time_point t) const { return has_deadline && t > deadline; }
};

enum Status : int {
    DONE = 0, SLICE = 1, TIMEOUT = 2, GIVE_UP = 3, MEMORY_CAP = 4, EXHAUSTED = 5,
    FOUND = 6, NONE = 7,  // decide(): an order within the limit; none exists
    STOPPED = 8  // decide() with threads: another searcher answered (internal)
};

// A 64-bit hash of k words (splitmix64 steps chained).
inline u64 hash_words(const u64* w, int k) {
    u64 h = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < k; ++i) {
        u64 x = w[i] + h;
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
        h = x ^ (x >> 31);
    }
    return h;
}

template <int W>
struct Mask {
    u64 w[W];

    static Mask zero() {
        Mask m;
        for (int i = 0; i < W; ++i) m.w[i] = 0;
        return m;
    }
    bool test(int v) const { return (w[v >> 6] >> (v & 63)) & 1; }
    void set(int v) { w[v >> 6] |= u64(1) << (v & 63); }
    void flip(int v) { w[v >> 6] ^= u64(1) << (v & 63); }
    bool operator==(const Mask& o) const {
        for (int i = 0; i < W; ++i)
            if (w[i] != o.w[i]) return false;
        return true;
    }
    // Python's integer order: the highest differing bit decides.
    int cmp(const Mask& o) const {
        for (int i = W - 1; i >= 0; --i)
            if (w[i] != o.w[i]) return w[i] < o.w[i] ? -1 : 1;
        return 0;
    }
    bool subset_of(const Mask& o) const {  // this & ~o == 0
        for (int i = 0; i < W; ++i)
            if (w[i] & ~o.w[i]) return false;
        return true;
    }
    bool any() const {
        for (int i = 0; i < W; ++i)
            if (w[i]) return true;
        return false;
    }
    u64 hash() const { return hash_words(w, W); }
};

// Calls f(v) for every set bit v of m & filter, in ascending order.
template <int W, class F>
inline void for_bits(const Mask<W>& m, F&& f) {
    for (int i = 0; i < W; ++i) {
        u64 x = m.w[i];
        while (x) {
            int b = __builtin_ctzll(x);
            x &= x - 1;
            f(i * 64 + b);
        }
    }
}

// Closed set: open addressing, linear probing, masks -> last op (-2 marks an empty slot).
template <int W>
class Closed {
  public:
    Closed() { reset(1024); }
    void reset(size_t cap) {
        keys_.assign(cap, Mask<W>::zero());
        last_.assign(cap, -2);
        keys_.shrink_to_fit();
        last_.shrink_to_fit();
        size_ = 0;
    }
    size_t size() const { return size_; }
    size_t bytes() const { return keys_.capacity() * sizeof(Mask<W>) + last_.capacity() * 4; }
    // Bytes a rehash would allocate (beside the old table) if `inserts` more came now.
    size_t grow_bytes(size_t inserts) const {
        return 2 * (size_ + inserts) > keys_.size() ? 2 * bytes() : 0;
    }
    // The last op stored for m, or -2 when m is not in the set.
    int find(const Mask<W>& m) const {
        size_t mask = keys_.size() - 1, i = m.hash() & mask;
        while (last_[i] != -2) {
            if (keys_[i] == m) return last_[i];
            i = (i + 1) & mask;
        }
        return -2;
    }
    void insert(const Mask<W>& m, int last) {
        if (2 * (size_ + 1) > keys_.size()) grow();
        size_t mask = keys_.size() - 1, i = m.hash() & mask;
        while (last_[i] != -2) {
            if (keys_[i] == m) {
                last_[i] = last;
                return;
            }
            i = (i + 1) & mask;
        }
        keys_[i] = m;
        last_[i] = last;
        ++size_;
    }

  private:
    void grow() {
        std::vector<Mask<W>> keys;
        std::vector<int> last;
        keys.swap(keys_);
        last.swap(last_);
        reset(keys.size() * 2);
        for (size_t i = 0; i < keys.size(); ++i)
            if (last[i] != -2) insert(keys[i], last[i]);
    }
    std::vector<Mask<W>> keys_;
    std::vector<int> last_;
    size_t size_ = 0;
};

// The decision search's dead sets: exact membership of masks stored in k words each
// (k = ceil(n / 64), a runtime value, not the template's W).
//
// Masks sit in an arena of fixed blocks of kBlock masks (growth adds a block, never
// copies). A table of 8-byte slots points at them: the arena index + 1 in the low 32
// bits (0: empty), the hash's low 32 bits in the high ones (the slot comes from its high
// bits), so that a probe touches the
// arena only on a tag match (then the words are compared: no false positives). Linear
// probing; any table size (a hash maps to slot (hash * size) >> 64). The table grows by
// a rebuild from the arena (the old table is freed first, so a growth allocates only
// the new one), and only in prepare(), at a check: it doubles when the inserts that may
// come before the next check would pass load 3/4, or, when room() found that the
// doubling would not fit the budget, 9/10.
//
// Several searchers may share it (decide() with threads): contains() reads without a
// lock (a slot is published with a release store after its mask and weight are
// written, so a reader that sees the slot sees the mask; a set inserted meanwhile may be
// missed, which costs a re-search, never a wrong answer); insert() takes a mutex;
// prepare(), evict() and reset() run only while no searcher runs. insert() drops a set
// (forgets it at once: always sound) rather than grow the table past load 15/16 or the
// arena past the blocks prepare() reserved.
//
// Bytes per set: 8k + 1 in the arena plus 8 / load in the table (load 3/8..9/10),
// e.g. 58-70 B for a 359-op segment (k = 6) where Closed<8> takes 136-272 B.
//
// Each set carries a weight (a byte beside its mask: the bit length of the visits its
// subtree took to prove it dead). At the memory cap, evict() keeps the heavier half:
// a forgotten set costs only a re-search of its subtree, never a wrong answer.
class DeadSet {
  public:
    static constexpr size_t kBlock = 4096;  // masks per arena block

    DeadSet() { reset(1); }

    // Empties the set for masks of `words` words; frees the arena.
    void reset(int words, size_t slots = 1024) {
        k_ = std::max(words, 1);
        std::vector<std::unique_ptr<u64[]>>().swap(blocks_);
        slots_ = std::vector<u64>(slots, 0);
        size_ = 0;
        dropped_ = 0;
        may_double_ = true;
        peak_ = bytes();
    }
    size_t size() const { return size_.load(std::memory_order_relaxed); }
    // Sets insert() dropped since reset() (the table or the reserved arena was full).
    size_t dropped() const { return dropped_; }
    size_t bytes() const { return arena_bytes() + slots_.capacity() * sizeof(u64); }
    // The most bytes the set held at once (transients of a growth included) since reset.
    size_t peak() const { return peak_; }

    // Whether m (of hash h) is in the set: a tag match first, then the words.
    bool contains(const u64* m, u64 h) const {
        u64 tag = h & 0xFFFFFFFFu;
        size_t c = slots_.size(), i = slot(h, c);
        for (u64 s; (s = load(i)) != 0; i = i + 1 == c ? 0 : i + 1)
            if ((s >> 32) == tag && same(at(size_t(s & 0xFFFFFFFFu) - 1), m)) return true;
        return false;
    }
    // The hash of m that contains() takes, and a hint to load its slot: a lookup in a
    // table of millions of sets misses the cache; prefetched, it overlaps other work.
    u64 hash(const u64* m) const { return hash_words(m, k_); }
    void prefetch(u64 h) const { __builtin_prefetch(slots_.data() + slot(h, slots_.size())); }

    void insert(const u64* m, int weight) {
        u64 h = hash_words(m, k_);
        std::lock_guard<std::mutex> lock(insert_mutex_);
        if (contains(m, h)) return;
        size_t n = size_.load(std::memory_order_relaxed);
        if (n + 1 >= 0xFFFFFFFFull) throw std::length_error("too many dead sets");
        bool new_block = n == blocks_.size() * kBlock;
        if (16 * (n + 1) > 15 * slots_.size() ||
            (new_block && blocks_.size() == blocks_.capacity())) {
            ++dropped_;  // no room until the next prepare(): forget it now
            return;
        }
        if (new_block) {
            blocks_.emplace_back(new u64[block_words()]);  // uninitialised: no touch
            note_peak(0);
        }
        std::copy(m, m + k_, at(n));
        weight_at(n) = std::uint8_t(std::min(weight, 63));
        place(h, n + 1, true);
        size_.store(n + 1, std::memory_order_relaxed);
    }

    // Sets insert() takes before it drops one (until the next prepare()).
    size_t spare() const {
        size_t n = size(), table = 15 * slots_.size() / 16, arena = blocks_.capacity() * kBlock;
        size_t most = std::min(table, arena);
        return most > n ? most - n : 0;
    }

    // Whether prepare(inserts) would grow the table or reserve blocks.
    bool needs(size_t inserts) const {
        size_t s = size() + inserts;
        return slots_for(s) != slots_.size() || blocks_.capacity() * kBlock < s;
    }

    // Room for `inserts` more sets before the next call: grows the table (past load 3/4,
    // or 9/10 when room() found that doubling would not fit) and reserves the arena's
    // block pointers. Only while no searcher runs.
    void prepare(size_t inserts) {
        size_t s = size() + inserts, c = slots_for(s);
        if (c != slots_.size()) rebuild(c);
        size_t blocks = (s + kBlock - 1) / kBlock, cap = blocks_.capacity();
        if (cap < blocks) {
            while (cap < blocks) cap = next_cap(cap);
            note_peak(blocks_.capacity() * sizeof(std::unique_ptr<u64[]>));  // the old vector
            blocks_.reserve(cap);
        }
    }

    // Forgets all but the heavier half of the sets (ties: the earlier inserted), frees
    // the arena blocks it emptied, and re-places the rest in the same table; returns the
    // number forgotten. serenity.schedule.decide._evict is the same rule.
    size_t evict() {
        size_t keep = size_ / 2, count[64] = {};
        for (size_t i = 0; i < size_; ++i) ++count[weight_at(i)];
        int t = 63;
        size_t above = 0;  // sets heavier than t, all kept
        while (t > 0 && above + count[t] < keep) above += count[t--];
        size_t ties = keep - above, j = 0;  // the first `ties` sets of weight t are kept
        for (size_t i = 0; i < size_; ++i) {
            int w = weight_at(i);
            if (w < t || (w == t && ties == 0)) continue;
            if (w == t) --ties;
            if (j != i) {
                std::copy(at(i), at(i) + k_, at(j));
                weight_at(j) = std::uint8_t(w);
            }
            ++j;
        }
        blocks_.resize((j + kBlock - 1) / kBlock);
        std::fill(slots_.begin(), slots_.end(), 0);
        size_t evicted = size_ - j;
        size_ = j;
        for (size_t i = 0; i < j; ++i) place(hash_words(at(i), k_), i + 1);
        return evicted;
    }

    // Whether `inserts` more sets fit in `avail` bytes, transients included; records
    // whether the table may double meanwhile (else it fills up to load 9/10 first).
    bool room(size_t inserts, size_t avail) {
        size_t s = size_ + inserts, c = slots_.size(), grown = c;
        while (4 * s > 3 * grown) grown *= 2;
        // Blocks: the pointer vector may reallocate (old and new vectors at once).
        size_t blocks = (s + kBlock - 1) / kBlock, cap = blocks_.capacity(), old_cap = 0;
        while (cap < blocks) old_cap = cap, cap = next_cap(cap);
        size_t arena = blocks * block_words() * sizeof(u64) +
                       (cap + old_cap) * sizeof(std::unique_ptr<u64[]>);
        size_t table = std::max(c, grown) * sizeof(u64);  // the old one is freed first
        may_double_ = arena + table < avail;
        if (may_double_) return true;
        return 10 * s <= 9 * c && arena + c * sizeof(u64) < avail;
    }

  private:
    static size_t next_cap(size_t cap) { return std::max<size_t>(16, 2 * cap); }
    // The table size for s sets: doubled until load 3/4 once s passes 3/4 (or 9/10
    // when doubling may not), else the present one.
    size_t slots_for(size_t s) const {
        size_t c = slots_.size();
        if (4 * s > 3 * c && (may_double_ || 10 * s > 9 * c))
            while (4 * s > 3 * c) c *= 2;
        return c;
    }
    static size_t slot(u64 h, size_t c) {
        return size_t((static_cast<unsigned __int128>(h) * c) >> 64);
    }
    // A block: kBlock masks, then their kBlock weight bytes.
    size_t block_words() const { return kBlock * size_t(k_) + kBlock / sizeof(u64); }
    std::uint8_t& weight_at(size_t i) const {
        u64* block = blocks_[i / kBlock].get() + kBlock * size_t(k_);
        return reinterpret_cast<std::uint8_t*>(block)[i % kBlock];
    }
    size_t arena_bytes() const {
        return blocks_.size() * block_words() * sizeof(u64) +
               blocks_.capacity() * sizeof(std::unique_ptr<u64[]>);
    }
    u64* at(size_t i) const { return blocks_[i / kBlock].get() + (i % kBlock) * size_t(k_); }
    bool same(const u64* a, const u64* b) const {
        for (int i = 0; i < k_; ++i)
            if (a[i] != b[i]) return false;
        return true;
    }
    u64 load(size_t i) const { return __atomic_load_n(&slots_[i], __ATOMIC_ACQUIRE); }
    // index1: arena index + 1, not yet in the table; `publish`: searchers may be reading
    // (the mask and weight were written before: a release store).
    void place(u64 h, size_t index1, bool publish = false) {
        size_t c = slots_.size(), i = slot(h, c);
        while (slots_[i] != 0) i = i + 1 == c ? 0 : i + 1;
        if (publish)
            __atomic_store_n(&slots_[i], (h << 32) | index1, __ATOMIC_RELEASE);
        else
            slots_[i] = (h << 32) | index1;
    }
    void rebuild(size_t c) {
        std::vector<u64>().swap(slots_);
        slots_ = std::vector<u64>(c, 0);
        note_peak(0);
        size_t n = size_;
        for (size_t i = 0; i < n; ++i) place(hash_words(at(i), k_), i + 1);
    }
    void note_peak(size_t extra) { peak_ = std::max(peak_, bytes() + extra); }

    int k_ = 1;
    std::vector<std::unique_ptr<u64[]>> blocks_;
    std::vector<u64> slots_;
    std::atomic<size_t> size_{0};
    size_t peak_ = 0, dropped_ = 0;
    bool may_double_ = true;
    std::mutex insert_mutex_;
};

template <int W>
struct Entry {
    i64 f;
    i64 counter;
    i64 g;
    i64 mem;
    int negdepth;
    int last;
    Mask<W> done;
    Mask<W> ready;
};

// Priority queue of entries in the order of the Python tuple
// (f, -depth, counter, g, done, mem, last, ready), smallest first. The binary heap
// holds small keys (f, -depth, counter, slot); the rest of an entry sits in a pool
// slot (reused once popped), read only when two keys tie (the counter restarts at
// each run(), as in Python, so ties are possible after a resume).
template <int W>
class Queue {
  public:
    size_t size() const { return heap_.size(); }
    bool empty() const { return heap_.empty(); }
    size_t bytes() const {
        return heap_.capacity() * sizeof(Key) + pool_.capacity() * sizeof(Entry<W>) +
               free_.capacity() * sizeof(uint32_t);
    }
    // Bytes the vectors could allocate (beside the old ones) if `pushes` more came now.
    size_t grow_bytes(size_t pushes) const {
        size_t fresh = pushes > free_.size() ? pushes - free_.size() : 0;
        bool grows = heap_.size() + pushes > heap_.capacity() ||
                     pool_.size() + fresh > pool_.capacity();
        return grows ? 2 * bytes() : 0;
    }
    void clear() {
        std::vector<Key>().swap(heap_);
        std::vector<Entry<W>>().swap(pool_);
        std::vector<uint32_t>().swap(free_);
    }
    void push(const Entry<W>& e) {
        uint32_t slot;
        if (free_.empty()) {
            slot = uint32_t(pool_.size());
            pool_.push_back(e);
        } else {
            slot = free_.back();
            free_.pop_back();
            pool_[slot] = e;
        }
        heap_.push_back({e.f, e.counter, e.negdepth, slot});
        std::push_heap(heap_.begin(), heap_.end(), Greater{&pool_});
    }
    Entry<W> pop() {
        std::pop_heap(heap_.begin(), heap_.end(), Greater{&pool_});
        uint32_t slot = heap_.back().slot;
        heap_.pop_back();
        free_.push_back(slot);
        return pool_[slot];
    }

  private:
    struct Key {
        i64 f;
        i64 counter;
        int negdepth;
        uint32_t slot;
    };
    struct Greater {  // a > b
        const std::vector<Entry<W>>* pool;
        bool operator()(const Key& a, const Key& b) const {
            if (a.f != b.f) return a.f > b.f;
            if (a.negdepth != b.negdepth) return a.negdepth > b.negdepth;
            if (a.counter != b.counter) return a.counter > b.counter;
            const Entry<W>& x = (*pool)[a.slot];
            const Entry<W>& y = (*pool)[b.slot];
            if (x.g != y.g) return x.g > y.g;
            int c = x.done.cmp(y.done);
            if (c) return c > 0;
            if (x.mem != y.mem) return x.mem > y.mem;
            if (x.last != y.last) return x.last > y.last;
            return x.ready.cmp(y.ready) > 0;
        }
    };
    std::vector<Key> heap_;
    std::vector<Entry<W>> pool_;
    std::vector<uint32_t> free_;
};

struct Input {
    i64 size;
    int first, count;  // consumers: cons[first .. first + count)
};

// The search's tables in local indices, as built by exact._core_tables.
struct Tables {
    int n = 0;
    std::vector<i64> out_bytes, dead_bytes;
    std::vector<std::vector<int>> preds, succs;
    // Inputs that may be freed (not graph outputs, no consumer after the goal).
    std::vector<std::vector<Input>> ins, inplace;
    std::vector<int> cons;
    std::vector<std::vector<int>> wait, block;  // as local op lists
    std::vector<int> pair;
};

class CoreBase {
  public:
    virtual ~CoreBase() = default;
    virtual void begin() = 0;
    virtual int run(i64 upper, i64 max_expanded, double remaining, i64 give_up_at,
                    i64 max_bytes, double slice) = 0;
    virtual void clear() = 0;
    virtual size_t bytes() const = 0;
    virtual size_t states() const = 0;
    // Decision search (serenity.schedule.decide.within): resumable across SLICE returns
    // while the limit stays the same.
    virtual int decide(i64 limit, double remaining, i64 max_bytes, double slice,
                       i64 max_dead, int threads, i64 max_visits) = 0;
    virtual void decide_reset() = 0;
    // Beam search (exact._Search.beam); adds to `generated`.
    virtual int beam(int width, i64 bound, double remaining, i64 max_generated) = 0;
    virtual size_t dead_count() const = 0;
    virtual size_t dead_most() const = 0;  // the most held at once since decide_reset()
    virtual size_t decide_bytes() const = 0;
    virtual size_t decide_peak_bytes() const = 0;
    virtual size_t dead_dropped() const = 0;  // dead sets dropped for want of room
    i64 visited = 0, next_level = 0, evicted = 0;
    i64 expanded = 0, free_moves = 0, level = 0, peak = 0;
    i64 generated = 0;  // successors the beam searches generated
    std::vector<int> order;  // local indices
};

template <int W>
class Core : public CoreBase {
  public:
    Core(Tables t, i64 start_mem, i64 bound) : start_mem_(start_mem), t_(std::move(t)) {
        level = bound;
        int n = t_.n;
        goal_ = Mask<W>::zero();
        for (int v = 0; v < n; ++v) goal_.set(v);
        auto to_mask = [&](const std::vector<int>& xs) {
            Mask<W> m = Mask<W>::zero();
            for (int x : xs) m.set(x);
            return m;
        };
        pred_.resize(n);
        wait_.resize(n);
        block_.resize(n);
        has_wait_.resize(n);
        has_block_.resize(n);
        // The least any step adds on top of the memory before it (its outputs, less an
        // input it may overwrite): a state whose memory plus this passes the limit has
        // no step within it, so decide() never looks it up (it is never remembered).
        min_rise_ = n ? std::numeric_limits<i64>::max() : 0;
        for (int v = 0; v < n; ++v) {
            i64 saved = 0;
            for (const Input& in : t_.inplace[v]) saved = std::max(saved, in.size);
            min_rise_ = std::min(min_rise_, t_.out_bytes[v] - saved);
        }
        for (int v = 0; v < n; ++v) {
            pred_[v] = to_mask(t_.preds[v]);
            wait_[v] = to_mask(t_.wait[v]);
            block_[v] = to_mask(t_.block[v]);
            has_wait_[v] = !t_.wait[v].empty();
            has_block_[v] = !t_.block[v].empty();
        }
        Entry<W> e;
        e.f = std::max(bound, start_mem);
        e.negdepth = 0;
        e.counter = 0;
        e.g = start_mem;
        e.done = Mask<W>::zero();
        e.mem = start_mem;
        e.last = -1;
        e.ready = start_ready();
        heap_.push(e);
    }

    void begin() override { counter_ = i64(heap_.size()) + expanded; }

    size_t bytes() const override {
        return closed_.bytes() + heap_.bytes() + steps_.capacity() * sizeof(Step);
    }
    size_t states() const override { return closed_.size() + heap_.size(); }

    // What the tables could allocate during the next 1,024 expansions (a rehash of the
    // closed set, a doubling of the heap's vectors), beside what they hold.
    size_t growth() const {
        return closed_.grow_bytes(1024) + heap_.grow_bytes(1024 * size_t(std::max(t_.n, 1)));
    }

    void clear() override {
        heap_.clear();
        closed_.reset(1);
    }

    int run(i64 upper, i64 max_expanded, double remaining, i64 give_up_at, i64 max_bytes,
            double slice) override {
        const Stops stops(remaining, slice);
        while (!heap_.empty()) {
            Entry<W> e = heap_.pop();
            if (closed_.find(e.done) != -2) continue;
            if ((expanded & 1023) == 0 || (max_expanded >= 0 && expanded >= max_expanded)) {
                int stop = -1;
                auto t = Clock::now();
                if (stops.timed_out(t))
                    stop = TIMEOUT;
                else if (max_expanded >= 0 && expanded >= max_expanded)
                    stop = TIMEOUT;
                else if (max_bytes >= 0 && bytes() + growth() > size_t(max_bytes))
                    stop = MEMORY_CAP;  // before a growth would pass the cap, not after
                else if (t > stops.slice_end)
                    stop = SLICE;  // back to Python (progress, signals); nothing changes
                if (stop >= 0) {
                    heap_.push(e);  // resumable: nothing is lost
                    return stop;
                }
            }
            if (e.done == goal_) {
                closed_.insert(e.done, e.last);
                level = std::max(level, e.f);
                order = path(e.done);
                peak = e.g;
                return DONE;
            }
            // Steps: (v, during, after), ascending v.
            Mask<W> done = e.done;
            const Mask<W>* open_block = moves(steps_, done, e.mem, e.last, e.ready);
            if (steps_.empty()) throw std::runtime_error("no op can run: the goal is no downset");
            i64 h = steps_[0].during;
            for (const Step& s : steps_) h = std::min(h, s.during);
            if (h > e.f) {  // lazy heuristic: re-queue with the sharper key
                ++counter_;
                Entry<W> r = e;
                r.f = h;
                r.counter = counter_;
                heap_.push(r);
                continue;
            }
            closed_.insert(e.done, e.last);
            level = std::max(level, e.f);
            if (give_up_at >= 0 && e.f >= give_up_at) return GIVE_UP;
            ++expanded;
            size_t first = 0, last = steps_.size();
            if (use_free_moves) {
                int k = forced(steps_, e.f, done, e.mem, open_block, e.ready, candidates_);
                if (k >= 0) {
                    ++free_moves;
                    first = size_t(k);
                    last = first + 1;
                }
            }
            for (size_t k = first; k < last; ++k) {
                const Step s = steps_[k];
                Mask<W> nxt = done;
                nxt.set(s.v);
                if (s.during > upper || closed_.find(nxt) != -2) continue;
                Entry<W> c;
                c.ready = next_ready(e.ready, s.v, nxt);
                ++counter_;
                c.f = std::max(e.f, s.during);
                c.negdepth = e.negdepth - 1;
                c.counter = counter_;
                c.g = std::max(e.g, s.during);
                c.done = nxt;
                c.mem = s.after;
                c.last = s.v;
                heap_.push(c);
            }
        }
        return EXHAUSTED;
    }


    // ---- Decision search: a port of serenity.schedule.decide.within ----
    // Depth-first from the start, steps within the limit only, the least memory left
    // first; dead branching sets remembered. With one thread: same visits, same first
    // order found and same next level as the Python reference (tests/test_exact_core.py).
    //
    // With `threads` > 1, that many searchers run the same search from the start and
    // share the dead sets (lazy SMP): searcher i > 0 tries the steps of a branching set
    // rotated by i, so the searchers begin in different subtrees and skip the subtrees
    // the others proved dead. Sound as with one searcher: a set is inserted only when
    // every step from it was searched (by this searcher, or skipped as a set some searcher
    // had proven dead), so the answer "none" of the first searcher whose start set is
    // exhausted is a proof, and the next level is the least step any searcher rejected
    // (a superset of the steps one searcher would have rejected, each above the limit).
    // Only searcher 0's order ends a decision "found" (a helper that reaches the goal
    // stops): it searches in the one-searcher order and skips only sets with no path to
    // the goal, so it finds the very order one searcher finds, every run.
    // Searcher 0 does the checks (time, slice, memory cap, table growth); when one needs
    // the table alone it raises a flag, the others park at their next check (every
    // 1,024 of their visits), and it evicts or grows with no searcher running.
    int decide(i64 limit, double remaining, i64 max_bytes, double slice, i64 max_dead,
               int threads, i64 max_visits) override {
        const Stops stops(remaining, slice);
        max_visits_ = threads <= 1 ? max_visits : -1;
        threads = std::max(threads, 1);
        if (!deciding_ || limit != limit_ || size_t(threads) != workers_.size()) {
            decide_reset();
            limit_ = limit;
            if (start_mem_ > limit) {
                next_level = start_mem_;
                return NONE;
            }
            deciding_ = true;
            // Inserts between two checks: at most 1,024 visits + n + 1 frames closing per
            // searcher; with several, twice that (sync() holds a helper when less is left).
            inserts_ = size_t(threads == 1 ? 1 : 2 * threads) * (1024 + size_t(t_.n) + 1);
            for (int i = 0; i < threads; ++i) {
                auto w = std::make_unique<Worker>();
                w->id = i;
                w->paced = w->start = checks_.load();  // leashed(): searcher 0 checks first
                w->stack.reserve(size_t(t_.n) + 1);  // the deepest path: no reallocation
                push_frame(*w, Mask<W>::zero(), start_mem_, start_ready(), -1, start_mem_);
                workers_.push_back(std::move(w));
            }
        }
        stop_.store(0);
        active_ = size_t(threads);
        std::exception_ptr error;
        int status;
        if (threads == 1) {
            status = work(*workers_[0], stops, max_bytes, max_dead);
        } else {
            barrier_wanted_.store(false);
            parked_ = 0;
            std::vector<int> statuses(size_t(threads), 0);
            std::mutex error_mutex;
            auto run = [&](int i) {
                try {
                    statuses[size_t(i)] = work(*workers_[size_t(i)], stops, max_bytes, max_dead);
                } catch (...) {
                    std::lock_guard<std::mutex> lock(error_mutex);
                    if (!error) error = std::current_exception();
                    finish(STOPPED);  // the others stop at their next step
                }
            };
            std::vector<std::thread> pool;
            for (int i = 1; i < threads; ++i) pool.emplace_back(run, i);
            run(0);
            for (auto& t : pool) t.join();
            int ended = stop_.load();
            status = ended ? ended : statuses[0];  // none ended: all left at searcher 0's check
        }
        visited = 0;
        next_level = std::numeric_limits<i64>::max();
        for (const auto& w : workers_) {
            visited += w->visited;
            next_level = std::min(next_level, w->next_level);
        }
        if (error) {
            deciding_ = false;
            std::rethrow_exception(error);
        }
        if (status != SLICE) deciding_ = false;  // the caller reads the counters, then resets
        return status;
    }

    void decide_reset() override {
        workers_.clear();
        dead_.reset((t_.n + 63) / 64);
        visited = 0;
        evicted = 0;
        evictions_ = 0;
        dead_most_ = 0;
        next_level = std::numeric_limits<i64>::max();
        deciding_ = false;
    }

    size_t dead_count() const override { return dead_.size(); }
    size_t dead_most() const override { return std::max(dead_most_, dead_.size()); }
    size_t decide_bytes() const override { return dead_.bytes() + frame_bytes(); }
    size_t decide_peak_bytes() const override { return dead_.peak() + frame_bytes(); }
    size_t dead_dropped() const override { return dead_.dropped(); }

    bool use_free_moves = true;
    // Ops a free set may hold in run() and decide() (decide.py, "Free sets"); at most
    // kMaxFreeSet (exact._FREE_SET_MOST).
    int free_set_ops = 0;
    static constexpr int kMaxFreeSet = 8;

  private:
    struct Step {
        int v;
        i64 during, after;
        u64 h;  // decide(): the hash of the set it leads to (DeadSet::hash)
    };

    // Whether every reader of `in` is in `done` or is v (the set after v ran, without
    // copying the mask: W words per step on the largest segments).
    bool all_done(const Input& in, const Mask<W>& done, int v) const {
        for (int i = in.first; i < in.first + in.count; ++i)
            if (t_.cons[i] != v && !done.test(t_.cons[i])) return false;
        return true;
    }

    void step(const Mask<W>& done, i64 mem, int v, i64& during, i64& after_mem) const {
        i64 freed = t_.dead_bytes[v];
        for (const Input& in : t_.ins[v])
            if (all_done(in, done, v)) freed += in.size;
        i64 saved = 0;
        for (const Input& in : t_.inplace[v])
            if (in.size > saved && all_done(in, done, v)) saved = in.size;
        during = mem + t_.out_bytes[v] - saved;
        after_mem = mem + t_.out_bytes[v] - freed;
    }

    // ---- Beam search: a port of exact._Search.beam ----
    // Layer by layer (ops run): from each state of the layer, in the layer's order, its
    // free move alone (free_step, within max(g, bound)) or else every step, ascending;
    // one state per downset, a later successor replacing it only with a lower (peak,
    // memory after); then the `width` lowest by (peak, memory after, downset as a Python
    // integer) make the next layer (only they get their ready mask). Same order, peak and count of successors generated
    // as the reference. DONE (`order`, `peak`); TIMEOUT at the deadline (checked at each
    // layer) or once `generated` passes max_generated (>= 0); EXHAUSTED when no step is
    // left (the goal is not reachable).
    int beam(int width, i64 bound, double remaining, i64 max_generated) override {
        const Stops stops(remaining, 0.0);
        struct State {
            Mask<W> done, ready;
            i64 g, mem;
            int last;
        };
        struct Child {
            i64 peak, after;
            Mask<W> done;
            int v, parent;  // the op run and its state's index in the layer
        };
        struct Hash {
            size_t operator()(const Mask<W>& m) const { return size_t(m.hash()); }
        };
        std::vector<State> layer{{Mask<W>::zero(), start_ready(), start_mem_, start_mem_, -1}};
        std::vector<std::vector<std::pair<int, int>>> parents;  // per layer: (parent, op)
        std::vector<Child> next;
        std::vector<int> rank;
        std::unordered_map<Mask<W>, int, Hash> seen;
        std::vector<Step> steps;
        for (int depth = 0; depth < t_.n; ++depth) {
            if (stops.timed_out(Clock::now())) return TIMEOUT;
            next.clear();
            seen.clear();
            for (int i = 0; i < int(layer.size()); ++i) {
                const State& st = layer[size_t(i)];
                const Mask<W>* open_block = moves(steps, st.done, st.mem, st.last, st.ready);
                int k = free_step(steps, std::max(st.g, bound), st.done, st.mem,
                                  open_block != nullptr);
                size_t first = k >= 0 ? size_t(k) : 0, last = k >= 0 ? first + 1 : steps.size();
                generated += i64(last - first);
                if (max_generated >= 0 && generated > max_generated) return TIMEOUT;
                for (size_t j = first; j < last; ++j) {
                    const Step& s = steps[j];
                    Mask<W> nd = st.done;
                    nd.set(s.v);
                    i64 key = std::max(st.g, s.during);
                    const Child child{key, s.after, nd, s.v, i};
                    auto [at, fresh] = seen.emplace(nd, int(next.size()));
                    if (fresh) {
                        next.push_back(child);
                        continue;
                    }
                    Child& old = next[size_t(at->second)];
                    if (key < old.peak || (key == old.peak && s.after < old.after)) old = child;
                }
            }
            if (next.empty()) return EXHAUSTED;
            rank.resize(next.size());
            for (size_t j = 0; j < rank.size(); ++j) rank[j] = int(j);
            auto lower = [&](int a, int b) {
                const Child& x = next[size_t(a)];
                const Child& y = next[size_t(b)];
                if (x.peak != y.peak) return x.peak < y.peak;
                if (x.after != y.after) return x.after < y.after;
                return x.done.cmp(y.done) < 0;
            };
            size_t kept = std::min(rank.size(), size_t(std::max(width, 0)));
            std::partial_sort(rank.begin(), rank.begin() + kept, rank.end(), lower);
            std::vector<State> fresh_layer;
            fresh_layer.reserve(kept);
            std::vector<std::pair<int, int>> back;
            back.reserve(kept);
            for (size_t j = 0; j < kept; ++j) {
                const Child& c = next[size_t(rank[j])];
                const Mask<W> ready = next_ready(layer[size_t(c.parent)].ready, c.v, c.done);
                fresh_layer.push_back({c.done, ready, c.peak, c.after, c.v});
                back.emplace_back(c.parent, c.v);
            }
            layer.swap(fresh_layer);
            parents.push_back(std::move(back));
            if (layer.empty()) return EXHAUSTED;
        }
        // Every state of the last layer holds the whole segment: there is one.
        peak = layer[0].g;
        order.assign(parents.size(), -1);
        int at = 0;
        for (size_t d = parents.size(); d-- > 0;) {
            order[d] = parents[d][size_t(at)].second;
            at = parents[d][size_t(at)].first;
        }
        return DONE;
    }

    // Fills `steps` with the steps (v, during, after) allowed from a state, ascending v
    // (exact._Search._moves); returns the block `last` left open, or nullptr.
    const Mask<W>* moves(std::vector<Step>& steps, const Mask<W>& done, i64 mem, int last,
                         const Mask<W>& ready) const {
        const Mask<W>* open_block = (last >= 0 && has_block_[last]) ? &block_[last] : nullptr;
        Mask<W> rest = ready;
        if (open_block)
            for (int i = 0; i < W; ++i) rest.w[i] &= open_block->w[i];
        steps.clear();
        for_bits(rest, [&](int v) {
            if (has_wait_[v] && !wait_[v].subset_of(done)) return;  // delayed
            i64 during, after;
            step(done, mem, v, during, after);
            steps.push_back({v, during, after, 0});
        });
        return open_block;
    }

    // The ready mask at the start: the ops without a predecessor in the segment.
    Mask<W> start_ready() const {
        Mask<W> ready = Mask<W>::zero();
        for (int v = 0; v < t_.n; ++v)
            if (t_.preds[v].empty()) ready.set(v);
        return ready;
    }

    // The ready mask after v ran (exact._Search._next_ready); nxt holds v.
    Mask<W> next_ready(Mask<W> ready, int v, const Mask<W>& nxt) const {
        ready.flip(v);
        for (int x : t_.succs[v])
            if (pred_[x].subset_of(nxt)) ready.set(x);
        return ready;
    }

    // Index into `steps` of the one step the reductions leave (exact._Search._forced):
    // the free move or pair, else (no block open) a free set's first step; or -1.
    int forced(const std::vector<Step>& steps, i64 limit, const Mask<W>& done, i64 mem,
               const Mask<W>* open_block, const Mask<W>& ready, std::vector<int>& cand) const {
        int k = free_step(steps, limit, done, mem, open_block != nullptr);
        if (k < 0 && open_block == nullptr) k = free_set(steps, limit, done, mem, ready, cand);
        return k;
    }

    // Index into `steps` of the free move (exact._Search._free), or -1.
    int free_step(const std::vector<Step>& steps, i64 limit, const Mask<W>& done, i64 mem,
                  bool open_block) const {
        for (size_t k = 0; k < steps.size(); ++k) {
            const Step& s = steps[k];
            if (s.during <= limit && s.after <= mem && (open_block || !has_block_[s.v]))
                return int(k);
        }
        if (open_block) return -1;
        for (size_t k = 0; k < steps.size(); ++k) {
            const Step& s = steps[k];
            int v = t_.pair[s.v];
            if (v >= 0 && has_block_[s.v] && s.during <= limit) {
                Mask<W> d = done;
                d.set(s.v);
                i64 during, after;
                step(d, s.after, v, during, after);
                if (during <= limit && after <= mem) return int(k);
            }
        }
        return -1;
    }

    // Index into `steps` of the first step of a free set at `done`, no block open
    // (exact._Search._free_set; decide.py, "Free sets"), or -1. The ops v with 2 to
    // free_set_ops ops of their own and their ancestors not done lie within
    // free_set_ops - 1 successor steps of a ready op: those are the candidates, ascending.
    int free_set(const std::vector<Step>& steps, i64 limit, const Mask<W>& done, i64 mem,
                 const Mask<W>& ready, std::vector<int>& cand) const {
        const int most = free_set_ops;
        if (most < 2 || steps.empty()) return -1;
        // The candidates as a mask (ascending for free), the last layer's in `cand`.
        Mask<W> found = Mask<W>::zero();
        cand.clear();
        for_bits(ready, [&](int r) { cand.push_back(r); });
        size_t from = 0;
        for (int depth = 1; depth < most; ++depth) {
            size_t to = cand.size();
            for (size_t i = from; i < to; ++i)
                for (int x : t_.succs[cand[i]])
                    if (!done.test(x) && !ready.test(x) && !found.test(x)) {
                        found.set(x);
                        cand.push_back(x);
                    }
            from = to;
        }
        int xs[kMaxFreeSet];
        unsigned pend[kMaxFreeSet];  // per op of the set: its preds not done, as set bits
        int chosen = -1;
        for_bits(found, [&](int v) {
            if (chosen >= 0 || has_block_[v]) return;
            int count = pending(done, v, most, xs);
            if (count < 2) return;
            std::sort(xs, xs + count);
            for (int i = 0; i < count; ++i) {
                pend[i] = 0;
                for (int p : t_.preds[xs[i]])
                    if (!done.test(p)) pend[i] |= 1u << (std::find(xs, xs + count, p) - xs);
            }
            chosen = set_order(xs, pend, count, limit, done, mem);
        });
        if (chosen >= 0)
            for (size_t k = 0; k < steps.size(); ++k)
                if (steps[k].v == chosen) return int(k);
        return -1;
    }

    // Fills xs with v and its ancestors not in `done` (at most `most`); their count, or
    // 0 past `most`.
    int pending(const Mask<W>& done, int v, int most, int* xs) const {
        int count = 1;
        xs[0] = v;
        for (int i = 0; i < count; ++i)
            for (int p : t_.preds[xs[i]]) {
                if (done.test(p) || std::find(xs, xs + count, p) != xs + count) continue;
                if (count == most) return 0;
                xs[count++] = p;
            }
        return count;
    }

    // The set `done` plus the ops of xs in `bits`.
    Mask<W> with(const Mask<W>& done, const int* xs, int count, unsigned bits) const {
        Mask<W> d = done;
        for (int i = 0; i < count; ++i)
            if (bits >> i & 1) d.set(xs[i]);
        return d;
    }

    // The first op of an order of the set xs (ascending; pend: preds not done) from
    // `done` within `limit` that the rules allow, depth first in ascending ops, if no
    // downset between `done` and the whole set holds less memory than it; else -1
    // (exact._Search._set_order).
    int set_order(const int* xs, const unsigned* pend, int count, i64 limit,
                  const Mask<W>& done, i64 mem) const {
        const unsigned all = (1u << count) - 1;
        i64 held[1 << kMaxFreeSet];
        bool seen[1 << kMaxFreeSet];
        std::fill(seen, seen + (1u << count), false);
        // The downsets in increasing masks: a downset's memory from a smaller one's.
        held[0] = mem;
        seen[0] = true;
        // One chain of downsets first (most sets are rejected by it): the ops in turn.
        unsigned chain = 0;
        Mask<W> d = done;
        i64 m = mem;
        while (chain != all) {
            int i = 0;
            while ((chain >> i & 1) || (pend[i] & ~chain)) ++i;
            i64 during, after;
            step(d, m, xs[i], during, after);
            d.set(xs[i]);
            chain |= 1u << i;
            held[chain] = m = after;
            seen[chain] = true;
        }
        for (unsigned c = 0; c < all; ++c)
            if (seen[c] && held[c] < held[all]) return -1;
        i64 least = mem;
        for (unsigned b = 1; b <= all; ++b) {
            if (seen[b]) {
                least = std::min(least, held[b]);
                continue;
            }
            for (int i = 0; i < count; ++i) {
                unsigned a = b & ~(1u << i);
                if (!(b >> i & 1) || !seen[a] || (pend[i] & ~a)) continue;
                i64 during, after;
                step(with(done, xs, count, a), held[a], xs[i], during, after);
                held[b] = after;
                seen[b] = true;
                least = std::min(least, after);
                break;
            }
        }
        if (held[all] > least) return -1;
        int first = -1;
        order_of(xs, pend, count, limit, done, 0, mem, -1, first);
        return first;
    }

    // Depth first through the set's orders, each step allowed as moves() allows it (the
    // open block, the waits), inline here: no step vector per level in the hot loop.
    bool order_of(const int* xs, const unsigned* pend, int count, i64 limit,
                  const Mask<W>& done, unsigned d, i64 m, int last, int& first) const {
        if (d == (1u << count) - 1) return true;
        const Mask<W>* open_block = (last >= 0 && has_block_[last]) ? &block_[last] : nullptr;
        Mask<W> now = with(done, xs, count, d);
        for (int i = 0; i < count; ++i) {
            int u = xs[i];
            if ((d >> i & 1) || (pend[i] & ~d) || (open_block && !open_block->test(u))) continue;
            if (has_wait_[u] && !wait_[u].subset_of(now)) continue;
            i64 during, after;
            step(now, m, u, during, after);
            if (during <= limit && order_of(xs, pend, count, limit, done, d | 1u << i, after, u,
                                            first)) {
                if (d == 0) first = u;
                return true;
            }
        }
        return false;
    }

    std::vector<int> path(Mask<W> done) const {
        std::vector<int> p;
        for (int v = closed_.find(done); v != -1; v = closed_.find(done)) {
            p.push_back(v);
            done.flip(v);
        }
        std::reverse(p.begin(), p.end());
        return p;
    }

    struct Frame {
        Mask<W> done, ready;
        i64 mem, during;
        size_t begin, i, end;
        int v;
        i64 v0;  // visits before it was entered
    };

    // One searcher of decide(): its path, its steps and its counters.
    struct Worker {
        int id = 0;
        std::vector<Frame> stack;
        std::vector<Step> arena, steps;
        std::vector<int> candidates;  // free_set()'s scratch
        i64 visited = 0, next_level = std::numeric_limits<i64>::max();
        u64 paced = 0, start = 0;  // searcher 0's checks: seen last, at the start (leashed())
        std::atomic<size_t> frames{0};  // its frame bytes at its last check (for searcher 0)
        size_t frame_bytes() const {
            return stack.capacity() * sizeof(Frame) +
                   (arena.capacity() + steps.capacity()) * sizeof(Step);
        }
    };

    // Whether the set a step leads to may have a step within the limit: not when its
    // memory plus the least rise of any step passes it (a dead end: push_frame drops
    // such steps, but for the one to the goal, which is never looked up).
    bool may_be_dead(const Step& s) const { return s.after + min_rise_ <= limit_; }

    // A dead set's weight: the bit length of the visits its subtree took.
    static int weight(i64 work) { return 64 - __builtin_clzll(u64(work) | 1) - (work == 0); }

    // Searcher w's depth-first search until an answer or a check stops it: FOUND or
    // NONE (for it, or STOPPED when another searcher answered first), or the status
    // of a check (SLICE: resumable where it stopped).
    int work(Worker& w, const Stops& stops, i64 max_bytes, i64 max_dead) {
        const bool alone = workers_.size() == 1;
        while (!w.stack.empty()) {
            if (!alone && stop_.load(std::memory_order_relaxed)) return STOPPED;
            Frame& f = w.stack.back();
            if (f.done == goal_) {
                if (w.id > 0) return leave();  // searcher 0 finds the same order's goal
                if (finish(FOUND)) {
                    order.clear();
                    peak = start_mem_;
                    for (size_t k = 1; k < w.stack.size(); ++k) {
                        order.push_back(w.stack[k].v);
                        peak = std::max(peak, w.stack[k].during);
                    }
                }
                return FOUND;
            }
            if (f.i == f.end) {
                if (f.end - f.begin > 1) dead_.insert(f.done.w, weight(w.visited - f.v0));
                w.arena.resize(f.begin);
                w.stack.pop_back();
                continue;
            }
            const Step s = w.arena[f.i];
            Mask<W> nxt = f.done;
            nxt.set(s.v);
            if (may_be_dead(s) && dead_.contains(nxt.w, s.h)) {
                ++f.i;
                continue;
            }
            if (((w.visited + 1) & 1023) == 1) {  // as Python: at visits 1, 1025, ...
                if (alone && max_visits_ >= 0 && w.visited >= max_visits_) return TIMEOUT;
                int status = alone ? check(stops, max_bytes, max_dead)
                                   : sync(w, stops, max_bytes, max_dead);
                if (status) return status;  // this visit is made on resume
            }
            ++f.i;
            ++w.visited;
            push_frame(w, nxt, s.after, next_ready(f.ready, s.v, nxt), s.v, s.during);
        }
        finish(NONE);
        return NONE;
    }

    // A helper leaves the decision (it reached the goal: searcher 0 will too); the
    // barrier stops waiting for it.
    int leave() {
        {
            std::lock_guard<std::mutex> lock(barrier_mutex_);
            --active_;
        }
        barrier_cv_.notify_all();
        return STOPPED;
    }

    // Ends the decision for every searcher; false when another one ended it first.
    bool finish(int status) {
        int none = 0;
        bool first;
        {
            std::lock_guard<std::mutex> lock(barrier_mutex_);
            first = stop_.compare_exchange_strong(none, status);
        }
        barrier_cv_.notify_all();
        return first;
    }

    // The checks every 1,024 visits, with no other searcher running: the deadline, the
    // memory cap (at the cap, before a growth passes it, the heavier half of the dead
    // sets stays; the search stops only when even that leaves no room), the table's
    // growth, the end of the slice. 0: go on.
    int check(const Stops& stops, i64 max_bytes, i64 max_dead) {
        auto t = Clock::now();
        if (stops.timed_out(t)) return TIMEOUT;
        if ((max_dead >= 0 && i64(dead_.size()) >= max_dead) || !dead_room(max_bytes)) {
            if (evictions_ == kMaxEvictions) return MEMORY_CAP;
            ++evictions_;
            dead_most_ = std::max(dead_most_, dead_.size());
            evicted += i64(dead_.evict());
            if (!dead_room(max_bytes)) return MEMORY_CAP;
        }
        dead_.prepare(inserts_);
        if (t > stops.slice_end) return SLICE;  // back to Python
        return 0;
    }

    // Whether helper w waits at its check for searcher 0's next one: before searcher
    // 0's first check of the decision (the memory cap, the deadline), or when the
    // table's room may not hold one check's worth of inserts from every searcher (the
    // room searcher 0's checks make). Otherwise the searchers run at their own pace.
    bool leashed(const Worker& w) const {
        if (checks_.load() == w.paced && w.paced == w.start) return true;
        return dead_.spare() < workers_.size() * (1024 + size_t(t_.n) + 1);
    }

    // A check of searcher w when several run. Searcher 0 decides whether check() must
    // run (it evicts or grows: the table alone) and then parks the others; they park
    // at their own checks while the flag is up, and take the outcome. A helper that is
    // leashed() waits for searcher 0's next check. Without the leash a helper on a busy
    // machine, searcher 0 descheduled, ran past the table's room (its dead sets
    // dropped, to be searched again) and answered a decision before searcher 0's
    // first check saw the memory cap. Waiting for every check of searcher 0 instead
    // cost a quarter of the helper's speed with twice as many threads as cores.
    int sync(Worker& w, const Stops& stops, i64 max_bytes, i64 max_dead) {
        w.frames.store(w.frame_bytes(), std::memory_order_relaxed);
        if (w.id != 0 && !barrier_wanted_.load() && !leashed(w)) return 0;
        std::unique_lock<std::mutex> lock(barrier_mutex_);
        if (w.id != 0) {
            barrier_cv_.wait(lock, [&] {
                return !leashed(w) || barrier_wanted_.load() || stop_.load();
            });
            w.paced = checks_.load();
            if (!barrier_wanted_.load()) return 0;  // again, under the lock
            u64 generation = generation_;
            ++parked_;
            barrier_cv_.notify_all();
            barrier_cv_.wait(lock, [&] { return generation_ != generation || stop_.load(); });
            return generation_ != generation ? outcome_ : STOPPED;
        }
        checks_.fetch_add(1);  // under the lock: a pacing helper's wait sees it
        auto t = Clock::now();
        bool needed = stops.timed_out(t) || t > stops.slice_end ||
                      (max_dead >= 0 && i64(dead_.size()) >= max_dead) ||
                      !dead_room(max_bytes) || dead_.needs(inserts_);
        if (!needed) {
            lock.unlock();
            barrier_cv_.notify_all();  // the helpers waiting for this check go on
            return 0;
        }
        barrier_wanted_.store(true);
        barrier_cv_.notify_all();  // a helper waiting for this check parks instead
        barrier_cv_.wait(lock, [&] { return parked_ + 1 == active_ || stop_.load(); });
        barrier_wanted_.store(false);
        if (stop_.load()) return STOPPED;
        outcome_ = check(stops, max_bytes, max_dead);
        parked_ = 0;
        ++generation_;
        lock.unlock();
        barrier_cv_.notify_all();
        return outcome_;
    }

    // Pushes searcher w's frame of set `done` (reached by op `v`, whose step was
    // `during`): its steps within the limit, or the free move alone, the least memory
    // left first (searcher i > 0: rotated by i).
    void push_frame(Worker& w, const Mask<W>& done, i64 mem, const Mask<W>& ready, int v,
                    i64 during) {
        std::vector<Step>& steps = w.steps;
        const Mask<W>* open_block = moves(steps, done, mem, v, ready);
        size_t kept = 0;  // keep the steps within the limit, in order
        for (const Step& s : steps) {
            if (s.during <= limit_)
                steps[kept++] = s;
            else if (s.during < w.next_level)
                w.next_level = s.during;
        }
        steps.resize(kept);
        size_t begin = w.arena.size();
        int k = use_free_moves ? forced(steps, limit_, done, mem, open_block, ready, w.candidates)
                               : -1;
        if (k >= 0) {
            w.arena.push_back(steps[size_t(k)]);
        } else {
            std::sort(steps.begin(), steps.end(), [](const Step& a, const Step& b) {
                if (a.after != b.after) return a.after < b.after;
                if (a.during != b.during) return a.during < b.during;
                return a.v < b.v;
            });
            if (w.id > 0 && steps.size() > 1)
                std::rotate(steps.begin(), steps.begin() + w.id % int(steps.size()), steps.end());
            w.arena.insert(w.arena.end(), steps.begin(), steps.end());
        }
        // No step into a dead end (decide.py, "Dead ends"): its steps would all be
        // rejected, each at least its memory plus the least rise, which stands in for
        // them in the next level. The goal is kept: it has no steps and ends the search.
        size_t end = begin;
        for (size_t j = begin; j < w.arena.size(); ++j) {
            const Step& s = w.arena[j];
            if (!may_be_dead(s)) {
                Mask<W> nxt = done;
                nxt.set(s.v);
                if (!(nxt == goal_)) {
                    w.next_level = std::min(w.next_level, s.after + min_rise_);
                    continue;
                }
            }
            w.arena[end++] = s;
        }
        w.arena.resize(end);
        // decide() looks each successor up in the dead sets before it enters it (most
        // visits' largest cost on big tables: a cache miss): hash them and prefetch their
        // slots now, so that the lookups of the later ones find them loaded.
        for (size_t j = begin; j < w.arena.size(); ++j) {
            if (!may_be_dead(w.arena[j])) continue;  // no lookup: no hash, no prefetch
            Mask<W> nxt = done;
            nxt.set(w.arena[j].v);
            w.arena[j].h = dead_.hash(nxt.w);
            dead_.prefetch(w.arena[j].h);
        }
        w.stack.push_back({done, ready, mem, during, begin, begin, w.arena.size(), v, w.visited});
    }

    // The searchers' frames: exact with one; with several, as each last reported.
    size_t frame_bytes() const {
        if (workers_.size() == 1) return workers_[0]->frame_bytes();
        size_t used = 0;
        for (const auto& w : workers_) used += w->frames.load(std::memory_order_relaxed);
        return used;
    }

    // Whether the dead sets may grow until the next check (inserts_ more) within
    // max_bytes (< 0: no cap).
    bool dead_room(i64 max_bytes) {
        size_t used = frame_bytes();
        if (max_bytes < 0) return dead_.room(inserts_, std::numeric_limits<size_t>::max());
        return used < size_t(max_bytes) && dead_.room(inserts_, size_t(max_bytes) - used);
    }

    std::vector<std::unique_ptr<Worker>> workers_;
    size_t inserts_ = 0;
    // Several searchers: who ended the decision (0: none yet), the barrier of sync().
    std::atomic<int> stop_{0};
    std::atomic<bool> barrier_wanted_{false};
    std::mutex barrier_mutex_;
    std::condition_variable barrier_cv_;
    size_t parked_ = 0, active_ = 0;  // parked at the barrier; still searching
    u64 generation_ = 0;
    std::atomic<u64> checks_{0};  // searcher 0's checks (leashed())
    int outcome_ = 0;
    DeadSet dead_;
    i64 limit_ = 0, start_mem_ = 0, min_rise_ = 0;
    i64 max_visits_ = -1;  // decide(): one searcher stops at the check past it (-1: none)
    // Evictions per decision (decide._MAX_EVICTIONS): past them, re-searches would cost
    // more than the sets save, and the search stops at the cap.
    static constexpr int kMaxEvictions = 4;
    int evictions_ = 0;
    size_t dead_most_ = 0;  // the most dead sets held before an eviction
    bool deciding_ = false;

    Tables t_;
    Mask<W> goal_;
    std::vector<Mask<W>> pred_, wait_, block_;
    std::vector<char> has_wait_, has_block_;
    Closed<W> closed_;
    Queue<W> heap_;
    std::vector<Step> steps_;
    std::vector<int> candidates_;  // free_set()'s scratch in run()
    i64 counter_ = 0;
};

std::vector<Input> inputs(const std::vector<std::pair<i64, std::vector<int>>>& xs,
                          std::vector<int>& cons) {
    std::vector<Input> out;
    for (const auto& [size, cs] : xs) {
        out.push_back({size, int(cons.size()), int(cs.size())});
        cons.insert(cons.end(), cs.begin(), cs.end());
    }
    return out;
}

using InputLists = std::vector<std::vector<std::pair<i64, std::vector<int>>>>;

std::unique_ptr<CoreBase> make_core(int words, std::vector<i64> out_bytes,
                                    std::vector<i64> dead_bytes,
                                    std::vector<std::vector<int>> preds,
                                    std::vector<std::vector<int>> succs, const InputLists& ins,
                                    const InputLists& inplace, std::vector<std::vector<int>> wait,
                                    std::vector<std::vector<int>> block, std::vector<int> pair,
                                    i64 start_mem, i64 bound, bool free_moves,
                                    int free_set_ops) {
    Tables t;
    t.n = int(out_bytes.size());
    t.out_bytes = std::move(out_bytes);
    t.dead_bytes = std::move(dead_bytes);
    t.preds = std::move(preds);
    t.succs = std::move(succs);
    for (const auto& xs : ins) t.ins.push_back(inputs(xs, t.cons));
    for (const auto& xs : inplace) t.inplace.push_back(inputs(xs, t.cons));
    t.wait = std::move(wait);
    t.block = std::move(block);
    t.pair = std::move(pair);
    if (t.n > words * 64) throw std::invalid_argument("segment larger than the mask");
    std::unique_ptr<CoreBase> core;
    auto build = [&](auto tag) {
        constexpr int w = decltype(tag)::value;
        auto c = std::make_unique<Core<w>>(std::move(t), start_mem, bound);
        c->use_free_moves = free_moves;
        c->free_set_ops = std::max(0, std::min(free_set_ops, Core<w>::kMaxFreeSet));
        core = std::move(c);
    };
    switch (words) {
        case 1: build(std::integral_constant<int, 1>{}); break;
        case 2: build(std::integral_constant<int, 2>{}); break;
        case 4: build(std::integral_constant<int, 4>{}); break;
        case 8: build(std::integral_constant<int, 8>{}); break;
        case 16: build(std::integral_constant<int, 16>{}); break;
        case 32: build(std::integral_constant<int, 32>{}); break;
        case 64: build(std::integral_constant<int, 64>{}); break;
        case 128: build(std::integral_constant<int, 128>{}); break;
        default: throw std::invalid_argument("words must be a power of two up to 128");
    }
    return core;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "Compiled best-first segment search of serenity.schedule.exact.";
    m.attr("MAX_WORDS") = 128;
    m.attr("DONE") = int(DONE);
    m.attr("SLICE") = int(SLICE);
    m.attr("TIMEOUT") = int(TIMEOUT);
    m.attr("GIVE_UP") = int(GIVE_UP);
    m.attr("MEMORY_CAP") = int(MEMORY_CAP);
    m.attr("EXHAUSTED") = int(EXHAUSTED);
    m.attr("FOUND") = int(FOUND);
    m.attr("NONE") = int(NONE);
    py::class_<CoreBase>(m, "Core")
        .def("begin", &CoreBase::begin, "Start a run(): the tie counter restarts as in Python.")
        .def("run", &CoreBase::run, py::arg("upper"), py::arg("max_expanded"),
             py::arg("remaining"), py::arg("give_up_at"), py::arg("max_bytes"), py::arg("slice"),
             py::call_guard<py::gil_scoped_release>(),
             "Search until done, a stop condition or the end of the slice; a status code.")
        .def("clear", &CoreBase::clear, "Free the heap and the closed set.")
        .def_property_readonly("bytes", &CoreBase::bytes)
        .def_property_readonly("states", &CoreBase::states)
        .def_readonly("expanded", &CoreBase::expanded)
        .def_readonly("free_moves", &CoreBase::free_moves)
        .def_readonly("level", &CoreBase::level)
        .def_readonly("peak", &CoreBase::peak)
        .def_readonly("order", &CoreBase::order)
        .def("decide", &CoreBase::decide, py::arg("limit"), py::arg("remaining"),
             py::arg("max_bytes"), py::arg("slice"), py::arg("max_dead") = -1,
             py::arg("threads") = 1, py::arg("max_visits") = -1,
             py::call_guard<py::gil_scoped_release>(),
             "Decision search within `limit` until an answer, a stop or the end of the slice;"
             " `threads` searchers share the dead sets; one searcher stops (TIMEOUT) at the"
             " check after `max_visits` visits.")
        .def("decide_reset", &CoreBase::decide_reset, "Free the decision search's sets.")
        .def("beam", &CoreBase::beam, py::arg("width"), py::arg("bound"), py::arg("remaining"),
             py::arg("max_generated"), py::call_guard<py::gil_scoped_release>(),
             "Beam search of `width` (free moves within max(peak so far, `bound`)) until the"
             " goal (DONE: `order`, `peak`), the deadline or `max_generated` successors in"
             " all (TIMEOUT); EXHAUSTED when no step is left.")
        .def_readonly("generated", &CoreBase::generated)
        .def_property_readonly("dead_count", &CoreBase::dead_count)
        .def_property_readonly("dead_most", &CoreBase::dead_most)
        .def_property_readonly("decide_bytes", &CoreBase::decide_bytes)
        .def_property_readonly("decide_peak_bytes", &CoreBase::decide_peak_bytes)
        .def_property_readonly("dead_dropped", &CoreBase::dead_dropped)
        .def_readonly("visited", &CoreBase::visited)
        .def_readonly("evicted", &CoreBase::evicted)
        .def_readonly("next_level", &CoreBase::next_level);
    m.def("make_core", &make_core, py::arg("words"), py::arg("out_bytes"), py::arg("dead_bytes"),
          py::arg("preds"), py::arg("succs"), py::arg("ins"), py::arg("inplace"), py::arg("wait"),
          py::arg("block"), py::arg("pair"), py::arg("start_mem"), py::arg("bound"),
          py::arg("free_moves"), py::arg("free_set_ops") = 0);
}
