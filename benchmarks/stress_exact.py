"""Stress check: the exact engine against an independent subset DP on random graphs.

Usage: python benchmarks/stress_exact.py [SEED] [GRAPHS]

Prints every mismatch (there should be none) and a summary line. The DP here is
written from the memory model's definitions and shares no code with serenity.
"""

import functools
import random
import sys

from serenity import Problem, ScheduleOptions
from serenity.schedule.exact import exact


def rand_problem(rng, n):
    n_in = rng.randint(1, 3)
    sizes = [rng.randint(0, 50) for _ in range(n_in)]
    ins_l = []
    outs_l = []
    inp = []
    for _v in range(n):
        k = rng.randint(0, min(3, len(sizes)))
        # bias toward recent tensors to make chains
        pool = list(range(len(sizes)))
        ins = rng.sample(pool[-6:], min(k, len(pool[-6:])))
        nout = rng.choice([1, 1, 1, 2])
        outs = list(range(len(sizes), len(sizes) + nout))
        for _ in outs:
            sizes.append(
                sizes[rng.choice(ins)] if ins and rng.random() < 0.5 else rng.randint(0, 50)
            )
        ins_l.append(ins)
        outs_l.append(outs)
        inp.append([t for t in ins if nout == 1 and sizes[t] == sizes[outs[0]]])
    m = len(sizes)
    produced = {t for o in outs_l for t in o}
    gout = rng.sample(range(m), rng.randint(0, 2)) + [outs_l[-1][0]]
    return Problem(
        [f"o{i}" for i in range(n)],
        sizes,
        ins_l,
        outs_l,
        [t for t in range(m) if t not in produced],
        gout,
        inplace_inputs=inp,
    )


def dp_opt(p, inplace):
    n = p.num_ops
    full = (1 << n) - 1
    cons = [sum(1 << c for c in cs) for cs in p.consumers]
    predm = [sum(1 << u for u in p.preds[v]) for v in range(n)]

    def live(S):
        tot = 0
        for t in range(p.num_tensors):
            pr = p.producer[t]
            if pr != -1 and not (S >> pr) & 1:
                continue
            if p.is_graph_output[t] or (pr == -1 and cons[t] == 0) or (cons[t] & ~S):
                tot += p.tensor_sizes[t]
        return tot

    @functools.lru_cache(None)
    def best(S):
        if full == S:
            return 0
        m = live(S)
        r = None
        for v in range(n):
            if (S >> v) & 1 or predm[v] & ~S:
                continue
            after = S | (1 << v)
            step = m + sum(p.tensor_sizes[t] for t in p.op_outputs[v])
            if inplace:
                step -= max(
                    [
                        p.tensor_sizes[t]
                        for t in p.inplace_inputs[v]
                        if not p.is_graph_output[t] and cons[t] & ~after == 0
                    ],
                    default=0,
                )
            c = max(step, best(after))
            r = c if r is None else min(r, c)
        return r

    return max(live(0), best(0))


rng = random.Random(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
graphs = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
bad = 0
for it in range(graphs):
    n = rng.randint(1, 13)
    p = rand_problem(rng, n)
    for inplace in (False, True):
        want = dp_opt(p, inplace)
        r = exact(p, ScheduleOptions(inplace=inplace))
        if r.peak_bytes != want or not r.optimal:
            bad += 1
            print("MISMATCH", it, n, inplace, r.peak_bytes, want, r.optimal)
print(f"{graphs} graphs x 2 memory models, mismatches: {bad}")
sys.exit(1 if bad else 0)
