"""Do the best averaging settings of set complement transfer to Othello?

Reads the JSON of ``lgagent report SWEEP --averages --json`` for set complement (the
selection set) and for Othello (the test set). On set complement it picks, by lowest mean
unseen top1_err, the best BEMA scheme (``kind == "bema"``, one fixed setting: not
``bema-run``, which is each run's own), the best EMA and the best scheme
of all; then prints each one's effects on both tasks (scheme - raw, unseen and seen,
length-specific, scheme - best EMA), so the Othello numbers are of settings chosen without
looking at Othello. The step settings of a label (``tau=``, ``from=``) are scaled by
``--scale`` (the test runs' steps over the selection runs', e.g. 1.5 for 3000 over 2000) so
that "a quarter of the run" stays a quarter.

    python docs/scripts/avg_transfer.py [--scale R] SETCOMP.json OTHELLO.json [OTHELLO2.json ...]
"""

import json
import re
import sys

STEP_KEYS = re.compile(r"\b(tau|from)=(\d+)")


def scaled(label: str, r: float) -> str:
    return STEP_KEYS.sub(lambda m: f"{m.group(1)}={round(int(m.group(2)) * r)}", label)


def fmt(e) -> str:
    if not e:
        return "-"
    p = e.get("p_holm")
    return (f"{e['estimate']:+.4f} [{e['ci_low']:+.4f}, {e['ci_high']:+.4f}]"
            f" p_holm {p:.2g}" if p is not None else " p_holm -")


def best(schemes: dict, kind: str | None) -> str | None:
    pool = {k: v for k, v in schemes.items() if k not in ("raw", "bema-run")
            and (kind is None or v["kind"] == kind)
            and v["mean"]["unseen.top1_err"] is not None}
    return min(pool, key=lambda k: pool[k]["mean"]["unseen.top1_err"], default=None)


def main() -> None:
    args = sys.argv[1:]
    scale = 1.0
    if args and args[0] == "--scale":
        scale, args = float(args[1]), args[2:]
    sel = json.load(open(args[0]))
    tests = [(p, json.load(open(p))) for p in args[1:]]
    picks = {"best BEMA": best(sel["schemes"], "bema"), "best EMA": best(sel["schemes"], "ema"),
             "best of all": best(sel["schemes"], None)}
    for what, label in picks.items():
        print(f"\n## {what} on set complement ({args[0]}, {sel['runs']} runs): {label}")
        for i, (name, rep) in enumerate([(args[0], sel), *tests]):
            here = label if i == 0 else scaled(label, scale)
            e = rep["schemes"].get(here)
            if not e:
                print(f"  {name}: {here} not recorded")
                continue
            if here != label:
                print(f"  (as {here})")
            m = e["mean"]
            print(f"  {name} ({rep['runs']} runs; best EMA there: {rep['best_ema']}):")
            print(f"    mean unseen {m['unseen.top1_err']:.4f}, seen {m['seen.top1_err']:.4f}; "
                  f"raw unseen {rep['schemes']['raw']['mean']['unseen.top1_err']:.4f}")
            print(f"    unseen - raw   {fmt(e['vs_raw'].get('unseen.top1_err'))}")
            print(f"    seen - raw     {fmt(e['vs_raw'].get('seen.top1_err'))}")
            print(f"    length-specific {fmt(e['length_specific'])}")
            print(f"    - best EMA     {fmt(e['vs_best_ema'])}")


if __name__ == "__main__":
    main()
