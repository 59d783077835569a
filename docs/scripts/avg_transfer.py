"""Do the best averaging settings of set complement transfer to Othello?

Reads the JSON of ``lgagent report SWEEP --averages --json`` for set complement (the
selection set) and for Othello (the test set). On set complement it picks, by lowest mean
unseen top1_err, the best BEMA scheme (``kind == "bema"``), the best EMA and the best scheme
of all; then prints each one's effects on both tasks (scheme - raw, unseen and seen,
length-specific, scheme - best EMA), so the Othello numbers are of settings chosen without
looking at Othello.

    python docs/scripts/avg_transfer.py SETCOMP.json OTHELLO.json [OTHELLO2.json ...]
"""

import json
import sys


def fmt(e) -> str:
    if not e:
        return "-"
    p = e.get("p_holm")
    return (f"{e['estimate']:+.4f} [{e['ci_low']:+.4f}, {e['ci_high']:+.4f}]"
            f" p_holm {p:.2g}" if p is not None else " p_holm -")


def best(schemes: dict, kind: str | None) -> str | None:
    pool = {k: v for k, v in schemes.items() if k != "raw" and (kind is None or v["kind"] == kind)
            and v["mean"]["unseen.top1_err"] is not None}
    return min(pool, key=lambda k: pool[k]["mean"]["unseen.top1_err"], default=None)


def main() -> None:
    sel = json.load(open(sys.argv[1]))
    tests = [(p, json.load(open(p))) for p in sys.argv[2:]]
    picks = {"best BEMA": best(sel["schemes"], "bema"), "best EMA": best(sel["schemes"], "ema"),
             "best of all": best(sel["schemes"], None)}
    for what, label in picks.items():
        print(f"\n## {what} on set complement ({sys.argv[1]}, {sel['runs']} runs): {label}")
        for name, rep in [(sys.argv[1], sel), *tests]:
            e = rep["schemes"].get(label)
            if not e:
                print(f"  {name}: not recorded")
                continue
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
