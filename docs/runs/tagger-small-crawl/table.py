#!/usr/bin/env python3
# One markdown row per run of tagger-small-crawl.sh: python3 table.py DIR NAME[=label] ...
# DIR holds NAME.eval.json, NAME.train.json (the summary line) and NAME.time.txt
# (/usr/bin/time's line), as this folder does.
import json, re, sys
D = sys.argv[1]
tags = ["long_hair","short_hair","twintails","drill_hair","ponytail","blush","smile","open_mouth","hat","ribbon","glasses"]
print("| run | best epoch | train s (wall / CPU) | hair | eyes | " + " | ".join(t.replace("_hair","").replace("open_mouth","open") for t in tags) + " | ribbon, ponytail at best threshold |")
print("|---" * (len(tags) + 6) + "|")
for a in sys.argv[2:]:
    name, _, label = a.partition("=")
    label = label or name
    ev = json.load(open(f"{D}/{name}.eval.json"))
    tr = json.loads(open(f"{D}/{name}.train.json").read().strip().splitlines()[-1])
    m = re.search(r"([\d.]+) s wall ([\d.]+) s user", open(f"{D}/{name}.time.txt").read())
    r = ev["test_report"]; b = ev["best_threshold_report"]
    acc = lambda g: f'{100*r["accuracy"][g]["accuracy"]:.1f}%'
    f1 = [f'{r["f1"][t]["f1"]:.3f}' for t in tags]
    print(f'| {label} | {tr.get("best_epoch")} | {float(m.group(1)):,.0f} / {float(m.group(2)):,.0f} | {acc("hair_color")} | {acc("eye_color")} | '
          + " | ".join(f1) + f' | {b["f1"]["ribbon"]["f1"]:.3f}, {b["f1"]["ponytail"]["f1"]:.3f} |')
